"""Sweep grids: a TOML file that expands to run specs.

The schema (every key but ``models`` and ``methods`` is optional)::

    # nightly.toml
    models     = ["llama", "models/my-finetune"]   # registered names, local folders (relative
                                                   # to this file) or hub ids
    methods    = ["magnitude",                     # a name: the method's default parameters
                  { name = "sparsegpt", params = { percdamp = [0.01, 0.1] } },  # a list value is an axis
                  { name = "shortgpt", patterns = ["depth"], sparsities = [0.2, 0.3] }]  # its own axes
    sparsities = [0.5, 0.6, 0.7]                   # default [0.5]; N:M patterns imply their own
    patterns   = ["unstructured", "2:4"]           # default ["unstructured"]
    suites     = ["quick", "../suites/my.toml"]    # default ["quick"]; names or suite files (relative to this file)
    seeds      = [0, 1]                            # default [0]; each >= 0
    kernels    = ["", "csr,bsr"]                   # kernel sets to time; "" = none (default [""])
    tasks      = ["wikitext2"]                     # optional: instead of each suite's tasks
    device     = "cpu"                             # cpu | cuda (each worker gets its own device)

    [resources]              # what one run needs; Ray schedules on it, default from the device
    cpus = 1                 # also the torch threads of each run (``sweep --threads`` overrides)
    gpus = 0                 # 1 when device is cuda
    memory_gb = 4            # optional; Ray only starts a run where this much memory is free

The grid is the product models x methods (x their parameter axes) x patterns x sparsities x
suites x seeds x kernels. A method entry may give its own ``patterns``, ``sparsities`` and
``kernels`` (a structured method's targets and fractions, its ``shrunk`` timing), which replace
the grid's for that method only. Every point is validated before anything runs; points that mean
the same run (the dense baseline at several sparsities, an N:M pattern at several
sparsities) are kept once.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidSpecError, SparsebenchError
from .spec import RunSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KEYS = {"models", "methods", "sparsities", "patterns", "suites", "seeds", "kernels", "tasks", "device", "resources"}
RESOURCE_KEYS = {"cpus", "gpus", "memory_gb"}
METHOD_KEYS = {"name", "params", "patterns", "sparsities", "kernels"}


@dataclass(frozen=True)
class Resources:
    """What one run needs from the worker that runs it."""

    cpus: int = 1
    gpus: float = 0
    memory_gb: float | None = None


@dataclass(frozen=True)
class MethodChoice:
    name: str
    params: tuple[tuple[str, str], ...] = ()  # (key, raw value) as --param would take them
    # this method's own axes, instead of the grid's (e.g. a structured method's patterns and sparsities)
    patterns: tuple[str, ...] | None = None
    sparsities: tuple[float, ...] | None = None
    kernels: tuple[tuple[str, ...], ...] | None = None


@dataclass(frozen=True)
class Grid:
    models: tuple[str, ...]
    methods: tuple[MethodChoice, ...]
    sparsities: tuple[float | None, ...] = (0.5,)
    patterns: tuple[str, ...] = ("unstructured",)
    suites: tuple[str, ...] = ("quick",)
    seeds: tuple[int, ...] = (0,)
    kernels: tuple[tuple[str, ...], ...] = ((),)
    tasks: tuple[str, ...] | None = None
    device: str = "cpu"
    resources: Resources = Resources()
    threads: int | None = None  # torch threads per run (``sweep --threads``); None: ``resources.cpus``

    def specs(self) -> list[RunSpec]:
        """Every point of the grid as a parsed (not yet validated) RunSpec."""
        from .patterns import parse_pattern
        from .pruning import methods

        out = []
        for model, choice in itertools.product(self.models, self.methods):
            method = methods.get(choice.name).from_options(dict(choice.params))
            patterns = [parse_pattern(p) for p in choice.patterns or self.patterns]
            for pattern, sparsity, suite, seed, kernels in itertools.product(
                patterns, choice.sparsities or self.sparsities, self.suites, self.seeds, choice.kernels or self.kernels
            ):
                if pattern.implied_sparsity is not None:
                    sparsity = None  # 2:4 is 50% whatever the axis says
                out.append(RunSpec(method=method.name, params=method.params, model=model, pattern=pattern, sparsity=sparsity,
                                   suite=suite, tasks=self.tasks, seed=seed, device=self.device, kernels=kernels,
                                   threads=self.threads or self.resources.cpus))
        return list(dict.fromkeys(out))


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; every problem is a one-line :class:`InvalidSpecError`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SparsebenchError(f"cannot read grid {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSpecError(f"grid {path} is not valid TOML: {exc}") from None
    return parse_grid(data, base=path.parent)


def parse_grid(data: Mapping[str, Any], base: Path = Path(".")) -> Grid:
    unknown = set(data) - KEYS
    if unknown:
        raise InvalidSpecError(f"grid has unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    for key in ("models", "methods"):
        if not data.get(key):
            raise InvalidSpecError(f"grid needs a non-empty list {key!r}")
    kw: dict[str, Any] = {
        "models": tuple(_model(m, base) for m in _list(data, "models", str)),
        "methods": tuple(c for m in _list(data, "methods", (str, dict)) for c in _method_choices(m)),
    }
    kw.update(_axes(data))
    if "suites" in data:
        kw["suites"] = tuple(_suite(s, base) for s in _list(data, "suites", str))
    if "seeds" in data:
        kw["seeds"] = _list(data, "seeds", int)
        if any(seed < 0 for seed in kw["seeds"]):
            raise InvalidSpecError(f"grid 'seeds' must be integers >= 0, got {list(kw['seeds'])}")
    if "tasks" in data:
        kw["tasks"] = _list(data, "tasks", str) or None
    device = data.get("device", "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise InvalidSpecError(f"grid 'device' must be 'cpu' or 'cuda', got {device!r}")
    kw["device"] = device.split(":")[0]  # the worker's own device; see executors
    res = dict(data.get("resources", {}))
    if set(res) - RESOURCE_KEYS:
        raise InvalidSpecError(f"grid [resources] has unknown key(s) {sorted(set(res) - RESOURCE_KEYS)}; known: {sorted(RESOURCE_KEYS)}")
    res.setdefault("gpus", 1 if kw["device"] == "cuda" else 0)
    try:
        kw["resources"] = Resources(**res)
    except TypeError as exc:
        raise InvalidSpecError(f"grid [resources]: {exc}") from None
    if kw["resources"].cpus < 1:
        raise InvalidSpecError("grid [resources] cpus must be at least 1")
    return Grid(**kw)


def _axes(data: Mapping[str, Any]) -> dict[str, Any]:
    """The pattern, sparsity and kernel axes ``data`` sets (the grid's, or one method's own)."""
    out: dict[str, Any] = {}
    if "sparsities" in data:
        out["sparsities"] = tuple(float(s) for s in _list(data, "sparsities", (int, float)))
    if "patterns" in data:
        out["patterns"] = _list(data, "patterns", str)
    if "kernels" in data:
        out["kernels"] = tuple(tuple(k.strip() for k in s.split(",") if k.strip()) for s in _list(data, "kernels", str))
    return out


def _list(data: Mapping[str, Any], key: str, types: type | tuple[type, ...]) -> tuple:
    value = data[key]
    if not isinstance(value, list):
        value = [value]
    for v in value:
        if isinstance(v, bool) or not isinstance(v, types):
            raise InvalidSpecError(f"grid {key!r} has {v!r}, of the wrong type")
    if len(set(map(repr, value))) != len(value):
        raise InvalidSpecError(f"grid {key!r} lists a value twice: {value}")
    return tuple(value)


def _model(name: str, base: Path) -> str:
    """A relative folder is relative to the grid file; registered names and hub ids stay as they are."""
    local = base / name
    if not Path(name).is_absolute() and local.exists():
        return str(local.resolve())
    return name


def _suite(ref: str, base: Path) -> str:
    """A relative suite file is relative to the grid file; suite names stay as they are."""
    local = base / ref
    if ref.endswith(".toml") and not Path(ref).is_absolute() and local.is_file():
        return str(local.resolve())
    return ref


def _method_choices(entry: str | Mapping[str, Any]) -> list[MethodChoice]:
    if isinstance(entry, str):
        return [MethodChoice(entry)]
    if set(entry) - METHOD_KEYS or not isinstance(entry.get("name"), str) or not isinstance(entry.get("params", {}), Mapping):
        raise InvalidSpecError(f"a grid method is a name or {{ name = ..., params = {{...}} }} with optional own "
                               f"patterns, sparsities, kernels; got {dict(entry)}")
    params = entry.get("params", {})
    axes = [[(k, _raw(x)) for x in (v if isinstance(v, list) else [v])] for k, v in sorted(params.items())]
    own = _axes(entry)
    return [MethodChoice(entry["name"], tuple(combo), **own) for combo in itertools.product(*axes)]


def _raw(value: Any) -> str:
    """A TOML value as the string ``--param`` would take (the method converts it to its type)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
