"""The import graph of sparsebench: no cycles, and every module imports on its own."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

# the installed packages (pyproject's [tool.setuptools] packages)
PACKAGES = ("sparsebench", "sparsebench.commands", "sparsebench.methods", "sparsebench.tasks", "sparsebench.kernels", "sparsebench.site")


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{module name: (file, is a package)}`` for every module of the packages."""
    out = {}
    for pkg in PACKAGES:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations, pkg
        (folder,) = spec.submodule_search_locations
        for f in sorted(Path(folder).glob("*.py")):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = (f, f.stem == "__init__")
    return out


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``name`` imports anywhere (module level, functions, TYPE_CHECKING)."""
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = {f"{base}.{a.name}" for a in node.names} & known
            found.update(subs if len(subs) == len(node.names) else subs | {base})
    return (found & known) - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path of names, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_module_list_is_complete():
    mods = _modules()
    assert {"sparsebench.pruning", "sparsebench.drivers", "sparsebench.calibration", "sparsebench.methods.wanda",
            "sparsebench.commands.check_method", "sparsebench.site.build"} <= set(mods)


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    mods = _modules()
    graph = {name: _imports(name, path, is_pkg, set(mods)) for name, (path, is_pkg) in mods.items()}
    assert graph["sparsebench.drivers"] >= {"sparsebench.pruning", "sparsebench.calibration"}  # the walk sees imports
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# Third-party packages stay imported (the slow part); before each module, every sparsebench
# module is dropped from sys.modules, so each one is imported alone, as a user would.
_IMPORT_EACH_ALONE = """
import importlib, sys, traceback
import torch, transformers
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "sparsebench" or m.startswith("sparsebench.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    names = sorted(_modules())
    res = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, *names], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
