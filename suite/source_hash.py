"""The identity of a method's code: a hash of its source, as asv hashes a benchmark's.

A method's source is the file of the module that defines its class, and, recursively:

- the modules of the same package that this module takes names from (a helper shared by
  several methods, such as ``wanda_score`` in ``methods/wanda.py``, used by OWL and DSnoT);
- every registered method it builds on: one its class derives from, and one that a
  parameter names (OWL's ``base = "wanda"``, DSnoT's ``initial``): a parameter value that
  is a registered method's name is code the method runs.

The framework the method runs in (``sparsebench`` itself: drivers, mask selection,
verification) is not part of it; its version is in every record's provenance. So a fix in
``methods/wanda.py`` changes the identity of every Wanda, OWL and DSnoT result, and a run
stored before the fix no longer counts as "already stored".
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from .spec import canonical_json


def _file_digest(module: ModuleType) -> str:
    path = getattr(module, "__file__", None)
    if path:
        try:
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError:
            pass
    try:
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()
    except (OSError, TypeError):
        return "unavailable"  # e.g. defined interactively: its edits cannot be detected


def _package_imports(module: ModuleType) -> Iterator[str]:
    """Names of the modules of ``module``'s own package that it takes names from."""
    package = module.__name__.rpartition(".")[0]
    if not package:
        return
    for value in vars(module).values():
        dep = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(dep, str) and dep.startswith(package + ".") and dep != module.__name__ and dep in sys.modules:
            yield dep


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def method_source_files(method: str, params: Mapping[str, Any]) -> dict[str, str]:
    """``{module name: sha256 of its file}`` for every module that is part of the method's source."""
    from .pruning import methods

    registered = {cls: name for name, cls in methods.items()}
    files: dict[str, str] = {}
    seen: set[str] = set()
    todo: list[tuple[str, Mapping[str, Any]]] = [(methods.canonical(method), params)]
    while todo:
        name, ps = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        cls = methods.get(name)
        todo.extend((registered[base], {}) for base in cls.__mro__[1:] if base in registered)
        modules = [cls.__module__]
        while modules:
            mod_name = modules.pop()
            if mod_name in files or mod_name not in sys.modules:
                continue
            module = sys.modules[mod_name]
            files[mod_name] = _file_digest(module)
            modules.extend(_package_imports(module))
        todo.extend((methods.canonical(s), {}) for s in _strings(ps) if s in methods)
    return files


def method_source_hash(method: str, params: Mapping[str, Any]) -> str:
    """sha256 over the method's source files (see the module docstring for what counts)."""
    return hashlib.sha256(canonical_json(method_source_files(method, params))).hexdigest()


def current_method_source(method: str, params: Mapping[str, Any]) -> str | None:
    """The method's source hash in this installation, or None where it is not registered."""
    from .pruning import methods

    return method_source_hash(method, params) if method in methods else None
