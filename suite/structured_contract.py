"""The method contract's checks for structured methods (see :mod:`sparsebench.contract`)."""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from .drivers import choose_driver, prune
from .errors import SparsebenchError
from .masks import fingerprint
from .patterns import Channels, Depth, Heads, Structured
from .pruning import Method, PruneContext
from .structure import RemovalPlan, check_supported, outside_blocks
from .structure_check import measure_before, verify_shrunk

TARGETS: tuple[Structured, ...] = (Depth(), Heads(), Channels())
PROMPT_TOKENS = 12


def _failed(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return f"raised {type(exc).__name__}: {exc}" + (f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else "")


def _load(folder: Path):
    from .models import load_model, resolve_model

    return load_model(resolve_model(str(folder)))


def _targets(cls: type[Method], folder: Path) -> list[Structured]:
    loaded = _load(folder)
    out = []
    for target in TARGETS:
        try:
            choose_driver(cls(), target)
            check_supported(loaded.adapter, loaded.model, target)
        except SparsebenchError:
            continue
        out.append(target)
    return out


def _prompt(adapter, model) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, adapter.vocab_size(model), (1, PROMPT_TOKENS), generator=g)


def _decodes_like_forward(adapter, model) -> tuple[bool, str]:
    """Greedy cached decoding of 3 tokens, then one full forward over the result: the last logits agree."""
    ids = _prompt(adapter, model)
    with torch.no_grad():
        logits, cache = adapter.decode(model, ids)
        for _ in range(3):
            tok = logits[:, -1:].argmax(-1)
            ids = torch.cat([ids, tok], dim=1)
            logits, cache = adapter.decode(model, tok, cache)
        full = adapter.logits(model, ids)
    err = float((full[:, -1] - logits[:, -1]).abs().max())
    return err < 1e-3, f"{ids.shape[1] - PROMPT_TOKENS} tokens decoded; cached vs full forward max abs diff {err:.2g}"


def _round_trips(adapter, model) -> tuple[bool, str]:
    ids = _prompt(adapter, model)
    with tempfile.TemporaryDirectory() as d, torch.no_grad():
        model.save_pretrained(d)
        again = type(model).from_pretrained(d).eval()
        err = float((adapter.logits(model, ids) - adapter.logits(again, ids)).abs().max())
    same = sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in again.parameters())
    return same and err < 1e-5, f"reloaded: same parameter count {same}, logits max abs diff {err:.2g}"


def check_structured(cls: type[Method], family: str, folder: Path, sparsity: float, calibration,
                     add: Callable[..., None]) -> None:
    """Add the structured contract checks of ``cls`` on the tiny model in ``folder``."""
    try:
        targets = _targets(cls, folder)
    except Exception as exc:
        add("prunes without error", family, "-", False, _failed(exc))
        return
    if not targets:
        add("supports a checked target", family, "-", False, f"none of {', '.join(map(str, TARGETS))} runs on this model")
        return
    cal = calibration if cls.meta.needs_calibration else None
    for target in targets:
        plans: list[RemovalPlan] = []
        for seed in (0, 0):
            loaded = _load(folder)
            adapter = loaded.adapter
            before = measure_before(adapter, loaded.model, target)
            outside = fingerprint(outside_blocks(adapter, loaded.model))
            try:
                plans.append(prune(cls(), PruneContext(loaded, target, sparsity, seed, cal, progress=False)))
            except Exception as exc:
                add("prunes without error", family, target, False, _failed(exc))
                break
        if len(plans) < 2:
            continue
        model = loaded.model
        report = verify_shrunk(adapter, before, model, plans[-1], lambda m: adapter.logits(m, _prompt(adapter, m)))
        add("structure verified", family, target, report.ok, "; ".join(report.problems[:3]) or
            f"removed {report.achieved:.3f} of the targeted parameters (target {sparsity:g} ± {report.tolerance:.3f}); "
            f"{report.params_before} → {report.params_after} parameters")
        kept = fingerprint(outside_blocks(adapter, model)) == outside
        add("parameters outside the blocks unchanged", family, target, kept,
            "embeddings, final norm and head as loaded" if kept else "a parameter outside the blocks changed")
        for check, fn in (("cached decoding matches a full forward", _decodes_like_forward),
                          ("save_pretrained + from_pretrained round-trips", _round_trips)):
            try:
                ok, detail = fn(adapter, model)
            except Exception as exc:
                ok, detail = False, _failed(exc)
            add(check, family, target, ok, detail)
        same = plans[0] == plans[1]
        add("same seed, same plan", family, target, same, "identical plans twice" if same else "the two plans differ")
