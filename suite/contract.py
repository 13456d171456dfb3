"""The method contract, as checks a contributor can run on their own method.

Every registered method must, on tiny random models of every supported family and for
every pattern it supports (unstructured, unstructured-global, 2:4, 4:8, block4x4: those a
driver runs it with and the models' layer shapes allow):

- meet the target sparsity (as the runner's verification measures it) and pass that verification;
- produce valid N:M masks when asked for N:M;
- give the same masks for the same seed;
- change nothing outside the targeted (prunable) layers;
- declare a range for every numeric parameter (:func:`sparsebench.params.param`).

A structured method (``depth``, ``heads``, ``channels`` targets) must instead, for every target
it supports and the tiny model allows: give a smaller model that passes the structure
verification (shapes from its config, GQA consistency, targeted parameters removed within the
tolerance, finite logits); leave the parameters outside the blocks unchanged; decode with a KV
cache as a full forward predicts; round-trip through ``save_pretrained`` + ``from_pretrained``;
give the same plan for the same seed.

A method that does not prune (``meta.prunes`` is False, the dense baseline) must return no
masks and change no parameter at all. ``sparsebench check-method`` prints these checks;
the test suite runs them for every registered method.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .drivers import choose_driver, prune
from .errors import InvalidSpecError, SparsebenchError
from .masks import fingerprint, own_zeros, verify
from .params import numeric_params
from .patterns import NM, Block, Group, Pattern, Unstructured, fits
from .pruning import Method, PruneContext, methods
from .structured_contract import check_structured

CANDIDATE_PATTERNS: tuple[Pattern, ...] = (Unstructured(), Unstructured(Group.GLOBAL), NM(2, 4), NM(4, 8), Block(4, 4))


@dataclass(frozen=True)
class ContractCheck:
    """One contract check on one tiny model: passed or not, and why."""

    method: str
    check: str
    model: str
    pattern: str
    passed: bool
    detail: str = ""


def load_method_source(target: str) -> list[str]:
    """Registered names for ``target``: a registered method (built-in or plugin) or a ``.py`` file.

    A file is imported once as a module; the methods it registers with ``@methods.register``
    are returned. Raises a one-line :class:`SparsebenchError` if nothing is found.
    """
    path = Path(target).expanduser()
    if target.endswith(".py") or path.is_file():
        if not path.is_file():
            raise SparsebenchError(f"no such method file: {path}")
        before = set(methods.list())
        module_name = f"sparsebench_contrib_{path.stem.replace('-', '_')}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise SparsebenchError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except SparsebenchError:
            raise
        except Exception as exc:  # a contributor's file: report, do not crash with a traceback
            sys.modules.pop(module_name, None)
            raise SparsebenchError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
        added = sorted(set(methods.list()) - before)
        if not added:
            raise SparsebenchError(f"{path} registers no method; decorate a Method subclass with @methods.register(\"name\")")
        return added
    return [methods.canonical(target)]


def _patterns(cls: type[Method], shapes: list[tuple[int, int]], sparsity: float) -> list[tuple[Pattern, float]]:
    """The candidate patterns a driver runs ``cls`` with and every layer shape allows, with their targets."""
    out: list[tuple[Pattern, float]] = []
    method = cls()
    for pattern in CANDIDATE_PATTERNS:
        try:
            choose_driver(method, pattern)
        except InvalidSpecError:
            continue
        if all(fits(pattern, shape) for shape in shapes):
            out.append((pattern, pattern.implied_sparsity or sparsity))
    return out


def _layer_shapes(model_dir: Path) -> list[tuple[int, int]]:
    from .models import load_model, resolve_model

    loaded = load_model(resolve_model(str(model_dir)))
    return [layer.shape for layer in loaded.adapter.prunable_layers(loaded.model)]


def _prune(model_dir: Path, cls: type[Method], pattern: Pattern, sparsity: float, seed: int, calibration):
    from .models import load_model, resolve_model

    loaded = load_model(resolve_model(str(model_dir)))
    adapter = loaded.adapter
    before = fingerprint(dict(adapter.iter_untargeted(loaded.model)))
    before_all = fingerprint(dict(loaded.model.named_parameters()))
    own = own_zeros({layer.name: layer.weight for layer in adapter.prunable_layers(loaded.model)})
    ctx = PruneContext(loaded, pattern, sparsity, seed, calibration if cls.meta.needs_calibration else None, progress=False)
    masks = prune(cls(), ctx)
    return loaded, masks, before, before_all, own


def _failed(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"raised {type(exc).__name__}: {exc}{where}"


def check_method(
    name: str,
    model_dirs: Mapping[str, Path],
    sparsity: float = 0.5,
    calibration=None,
    on_check: Callable[[ContractCheck], None] = lambda c: None,
) -> list[ContractCheck]:
    """Run the contract on ``name`` over the tiny models in ``model_dirs`` (``{family: folder}``)."""
    cls = methods.get(name)
    name = cls.name
    checks: list[ContractCheck] = []

    def add(check: str, model: str, pattern: object, passed: bool, detail: str = "") -> None:
        c = ContractCheck(name, check, model, str(pattern), bool(passed), detail)
        checks.append(c)
        on_check(c)

    numeric = numeric_params(cls.Params)
    if numeric:
        undeclared = [p.name for p in numeric if p.range is None]
        add("parameter ranges declared", "-", "-", not undeclared,
            f"no range for {', '.join(undeclared)}: declare one with sparsebench.params.param(default, ge=..., lt=...)"
            if undeclared else f"{len(numeric)} numeric parameters, each with a range")

    for family, folder in model_dirs.items():
        if not cls.meta.prunes:
            try:
                loaded, masks, _, before_all, _ = _prune(folder, cls, Unstructured(), 0.0, 0, calibration)
            except Exception as exc:
                add("prunes nothing", family, "-", False, _failed(exc))
                continue
            after_all = fingerprint(dict(loaded.model.named_parameters()))
            add("prunes nothing", family, "-", not masks and after_all == before_all,
                "no masks, no parameter changed" if not masks and after_all == before_all
                else f"returned {len(masks)} masks; parameters changed: {after_all != before_all}")
            continue
        if cls.meta.structured:
            check_structured(cls, family, folder, sparsity, calibration, add)
            continue
        try:
            patterns = _patterns(cls, _layer_shapes(folder), sparsity)
        except Exception as exc:
            add("prunes without error", family, "-", False, _failed(exc))
            continue
        if not patterns:
            add("supports a checked pattern", family, "-", False,
                f"none of {', '.join(map(str, CANDIDATE_PATTERNS))} is supported or fits the layer shapes")
            continue
        for pattern, target in patterns:
            try:
                loaded, masks, before, _, own = _prune(folder, cls, pattern, target, 0, calibration)
            except Exception as exc:
                add("prunes without error", family, pattern, False, _failed(exc))
                continue
            layers = loaded.adapter.prunable_layers(loaded.model)
            weights = {layer.name: layer.weight.detach() for layer in layers}
            report = verify(weights, masks, pattern, target, weights, own=own)
            off = abs(report.achieved_sparsity - target)
            add("target sparsity met", family, pattern, off <= 0.005,
                f"achieved {report.achieved_sparsity:.4f}, target {target:.4f}")
            if isinstance(pattern, NM):
                add("N:M valid", family, pattern, bool(report.nm_valid),
                    "every group keeps at most N" if report.nm_valid else "a group keeps more than N non-zeros")
            add("mask verification", family, pattern, report.ok, "; ".join(report.problems[:3]) or "masks match the zeroed weights")
            after = fingerprint(dict(loaded.adapter.iter_untargeted(loaded.model)))
            add("only targeted layers change", family, pattern, after == before,
                "untargeted parameters unchanged" if after == before else "a parameter outside the prunable layers changed")
        _check_seed(cls, family, folder, *patterns[0], calibration, add)
    return checks


def _check_seed(cls: type[Method], family: str, folder: Path, pattern: Pattern, target: float, calibration, add) -> None:
    try:
        a = _prune(folder, cls, pattern, target, 1, calibration)[1]
        b = _prune(folder, cls, pattern, target, 1, calibration)[1]
    except Exception as exc:
        add("same seed, same mask", family, pattern, False, _failed(exc))
        return
    differ = sorted(n for n in set(a) | set(b) if n not in a or n not in b or not torch.equal(a[n], b[n]))
    add("same seed, same mask", family, pattern, not differ,
        "identical masks for seed 1 twice" if not differ else f"masks differ in {len(differ)} layers, e.g. {differ[0]}")


def summary(checks: Iterable[ContractCheck]) -> tuple[int, int]:
    """(passed, total)."""
    checks = list(checks)
    return sum(c.passed for c in checks), len(checks)
