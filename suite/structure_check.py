"""Verification of a structurally pruned model, and the parameter and FLOP counts its record keeps.

The checks (:func:`verify_shrunk`, run on every structured run and in the method contract):
the block count and every projection's shape agree with the new config; query and KV head
counts form consistent grouped-query attention; the fraction of targeted parameters removed is
within the plan's tolerance of the target (see :mod:`sparsebench.structure`); the logits are
finite. :class:`StructureCheck` adds, for the runner, that the parameters outside the blocks
(embeddings, final norm, LM head) are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .adapters import ModelAdapter
from .errors import VerificationError
from .families import matmul_weights
from .masks import fingerprint
from .patterns import Depth, Heads, Structured
from .structure import (
    RemovalPlan,
    block_layer,
    check_supported,
    geometry,
    layout_of,
    outside_blocks,
)


def targeted_parameters(adapter: ModelAdapter, model: nn.Module, target: Structured) -> int:
    """Parameters of the units ``target`` removes (module docstring)."""
    layout = layout_of(adapter, model)
    blocks = adapter.blocks(model)
    if isinstance(target, Depth):
        return sum(p.numel() for b in blocks for p in b.module.parameters())
    paths = layout.attention if isinstance(target, Heads) else (*layout.mlp_in, layout.mlp_out)
    return sum(p.numel() for b in blocks for path in paths or () for p in block_layer(b, path).module.parameters())


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@dataclass(frozen=True)
class StructureReport:
    """What verification found: parameter and FLOP counts before and after, and any problems."""

    achieved: float
    tolerance: float
    params_before: int
    params_after: int
    targeted_before: int
    targeted_after: int
    flops_per_token_before: int
    flops_per_token_after: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("achieved", "tolerance", "params_before", "params_after", "targeted_before",
                                              "targeted_after", "flops_per_token_before", "flops_per_token_after")}


def flops_per_token(model: nn.Module) -> int:
    """2 × the weights of every matrix product (LM head included); attention's context-dependent
    score and value products, and embedding lookups, are not counted."""
    return 2 * matmul_weights(model)


def verify_shrunk(adapter: ModelAdapter, before: Mapping[str, int], model: nn.Module, plan: RemovalPlan,
                  logits: Callable[[nn.Module], torch.Tensor]) -> StructureReport:
    """Check the shrunk ``model`` against ``plan``: block count and every projection's shape from
    its config, GQA consistency, targeted parameters removed within the tolerance, finite logits.
    ``before`` holds ``params``, ``targeted`` and ``flops`` of the model before pruning."""
    problems: list[str] = []
    layout = layout_of(adapter, model)
    geo = geometry(adapter, model)
    blocks = adapter.blocks(model)
    cfg = model.config
    if geo.blocks != getattr(cfg, layout.depth_key) or geo.blocks != before["blocks"] - len(plan.removed_blocks):
        problems.append(f"{geo.blocks} blocks, config says {getattr(cfg, layout.depth_key)}, plan keeps {before['blocks'] - len(plan.removed_blocks)}")
    for b in blocks:
        shapes = {layout.mlp_out: (None, geo.channels), **{p: (geo.channels, None) for p in layout.mlp_in}}
        if layout.attention is not None:
            q, k, v, o = layout.attention
            shapes.update({q: (geo.heads * geo.head_dim, None), k: (geo.kv_heads * geo.head_dim, None),
                           v: (geo.kv_heads * geo.head_dim, None), o: (None, geo.heads * geo.head_dim)})
        for path, (rows, cols) in shapes.items():
            shape = block_layer(b, path).shape
            if (rows is not None and shape[0] != rows) or (cols is not None and shape[1] != cols):
                problems.append(f"{b.name}.{path} is {shape[0]}x{shape[1]}, the config implies {rows or shape[0]}x{cols or shape[1]}")
    if geo.heads is not None and (geo.heads % geo.kv_heads or (plan.kept_heads and geo.heads != len(plan.kept_heads[0]))):
        problems.append(f"{geo.heads} query heads and {geo.kv_heads} KV heads are not consistent grouped-query attention")
    if plan.kept_channels and geo.channels != len(plan.kept_channels[0]):
        problems.append(f"{geo.channels} channels per block, the plan keeps {len(plan.kept_channels[0])}")
    targeted = targeted_parameters(adapter, model, plan.target)
    achieved = 1 - targeted / before["targeted"]
    if abs(achieved - plan.sparsity) > plan.tolerance + 1e-9:
        problems.append(f"removed {achieved:.4f} of the targeted parameters, target {plan.sparsity:.4f} ± {plan.tolerance:.4f}")
    with torch.no_grad():
        if not torch.isfinite(logits(model)).all():
            problems.append("the shrunk model's logits are not finite")
    return StructureReport(achieved, plan.tolerance, before["params"], parameters(model), before["targeted"], targeted,
                           before["flops"], flops_per_token(model), tuple(problems))


def measure_before(adapter: ModelAdapter, model: nn.Module, target: Structured) -> dict[str, int]:
    """What :func:`verify_shrunk` compares with, measured on the model before pruning."""
    return {"params": parameters(model), "targeted": targeted_parameters(adapter, model, target),
            "flops": flops_per_token(model), "blocks": len(adapter.blocks(model))}


def require_structure(report: StructureReport) -> StructureReport:
    if not report.ok:
        raise VerificationError("structured pruning failed verification: " + "; ".join(report.problems[:3]))
    return report


@dataclass(frozen=True)
class StructureCheck:
    """What the runner measures before a structured method runs, and checks after it."""

    measured: Mapping[str, int]
    outside: str  # fingerprint of the parameters outside the blocks

    @classmethod
    def before(cls, loaded: Any, target: Structured) -> StructureCheck:
        adapter, model = loaded.adapter, loaded.model
        check_supported(adapter, model, target)
        return cls(measure_before(adapter, model, target), fingerprint(outside_blocks(adapter, model)))

    def after(self, loaded: Any, plan: RemovalPlan, method: str) -> StructureReport:
        """The verified report of the shrunk ``loaded.model``; :class:`VerificationError` otherwise."""
        adapter, model = loaded.adapter, loaded.model
        ids = torch.arange(16, device=next(model.parameters()).device).unsqueeze(0) % adapter.vocab_size(model)
        report = require_structure(verify_shrunk(adapter, self.measured, model, plan, lambda m: adapter.logits(m, ids)))
        if fingerprint(outside_blocks(adapter, model)) != self.outside:
            raise VerificationError(f"method {method!r} changed parameters outside the blocks")
        return report
