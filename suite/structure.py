"""Structured pruning: unit scores → a removal plan → a smaller dense model, and its verification.

A structured target (:class:`~sparsebench.patterns.Depth`, ``Heads``, ``Channels``) removes
whole units. Its sparsity is the fraction of the *targeted parameters* removed:

==========  ==========================================  =============================================
target      unit                                        targeted parameters
==========  ==========================================  =============================================
depth       a block (decoder layer)                     every parameter of every block
heads       a query head; a KV head with its group      the attention projections (q, k, v, o)
channels    an MLP intermediate channel                 the MLP projections (gate/up/down, fc1/fc2)
==========  ==========================================  =============================================

Methods score units (:class:`UnitScores`, higher = keep); :func:`select_plan` is the one
place that turns scores into a :class:`RemovalPlan`, and :func:`shrink` the one place that
builds the smaller model from it (family knowledge comes from the adapter's
:class:`~sparsebench.adapters.StructureLayout`).

**The same count in every block.** A Hugging Face config states one number of heads, KV heads
and MLP channels for all blocks; per-block counts would need per-family code that no stock
config can load. So every block keeps the same number of units and scores only decide
*which* ones, which keeps ``save_pretrained`` + ``from_pretrained`` a faithful round trip.

**Heads and grouped-query attention.** Query head ``j`` reads KV head ``j // n`` (``n`` query
heads per KV head). A plan keeps ``g`` KV groups per block and ``h`` query heads in each kept
group, so the model has ``g·h`` heads and ``g`` KV heads and every group has the same size.
The attention projections' share kept is ``g(h+1) / (K(n+1))`` (q and o scale with query heads,
k and v with KV heads); the ``(g, h)`` nearest the target is chosen (ties: more groups kept).

**Tolerance.** Only some fractions are reachable (whole blocks, groups, channels). The plan
takes the nearest; verification accepts an achieved fraction within half the widest gap between
reachable fractions, plus 0.5% for biases that do not scale with the units.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .adapters import ModelAdapter, ModelBlock, PrunableLayer
from .errors import InvalidSpecError, VerificationError
from .families import StructureLayout, slice_linear, structure_layout
from .patterns import Channels, Depth, Heads, Structured

SLACK = 0.005  # biases and norms that do not scale with the units


@dataclass(frozen=True)
class Geometry:
    """The unit counts of one model (the same in every block)."""

    blocks: int
    heads: int | None
    kv_heads: int | None
    head_dim: int | None
    channels: int

    @property
    def group_size(self) -> int:
        return (self.heads or 0) // (self.kv_heads or 1)


@dataclass(frozen=True)
class UnitScores:
    """Importance of every unit, higher = keep. ``blocks`` ``[L]`` for depth; per block ``[H]``
    query-head and ``[K]`` KV-head scores for heads; per block ``[I]`` channel scores."""

    blocks: torch.Tensor | None = None
    heads: tuple[torch.Tensor, ...] = ()
    kv_heads: tuple[torch.Tensor, ...] = ()
    channels: tuple[torch.Tensor, ...] = ()


@dataclass(frozen=True)
class RemovalPlan:
    """What to remove: blocks, or per block the query heads, KV heads and channels to keep."""

    target: Structured
    sparsity: float  # the fraction asked for
    planned: float  # the fraction of targeted parameters the plan removes
    tolerance: float  # verification accepts |achieved - sparsity| <= tolerance
    removed_blocks: tuple[int, ...] = ()
    kept_heads: tuple[tuple[int, ...], ...] = ()
    kept_kv_heads: tuple[tuple[int, ...], ...] = ()
    kept_channels: tuple[tuple[int, ...], ...] = ()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": str(self.target), "planned": self.planned, "tolerance": self.tolerance}
        if isinstance(self.target, Depth):
            out["removed_blocks"] = list(self.removed_blocks)
        if self.kept_heads:
            out["heads_per_block"], out["kv_heads_per_block"] = len(self.kept_heads[0]), len(self.kept_kv_heads[0])
            out["kept_heads"] = [list(h) for h in self.kept_heads]
        if self.kept_channels:
            out["channels_per_block"] = len(self.kept_channels[0])
        return out


def layout_of(adapter: ModelAdapter, model: nn.Module) -> StructureLayout:
    return structure_layout(model, adapter.blocks(model)[0].module)


def check_supported(adapter: ModelAdapter, model: nn.Module, target: Structured) -> None:
    """Raise a one-line error unless ``target``'s units can be removed from ``model``."""
    layout = layout_of(adapter, model)
    if isinstance(target, Heads) and layout.attention is None:
        raise InvalidSpecError(f"{layout.family}-style configs derive the head size from the hidden size, so their heads "
                               "cannot be removed (depth and channels can)")


def outside_blocks(adapter: ModelAdapter, model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters outside the blocks (embeddings, final norm, LM head): structured pruning keeps them as they are."""
    prefix, _ = adapter.block_list(model)
    return {n: p for n, p in model.named_parameters() if not n.startswith(prefix + ".")}


def block_layer(block: ModelBlock, path: str) -> PrunableLayer:
    """The prunable layer at module path ``path`` inside ``block`` (a path of its family's layout)."""
    (layer,) = [x for x in block.layers if x.name == f"{block.name}.{path}"]
    return layer


def geometry(adapter: ModelAdapter, model: nn.Module) -> Geometry:
    """Unit counts of ``model`` from its config and first block."""
    layout = layout_of(adapter, model)
    blocks = adapter.blocks(model)
    cfg = model.config
    channels = block_layer(blocks[0], layout.mlp_out).in_features
    if layout.attention is None:
        return Geometry(len(blocks), None, None, None, channels)
    heads = getattr(cfg, layout.heads_key)
    kv = getattr(cfg, layout.kv_heads_key, None) or heads
    head_dim = getattr(cfg, layout.head_dim_key, None) or block_layer(blocks[0], layout.attention[0]).shape[0] // heads
    return Geometry(len(blocks), heads, kv, head_dim, channels)


def _tolerance(reachable: Sequence[float]) -> float:
    points = sorted({0.0, *reachable})
    widest = max((b - a for a, b in zip(points, points[1:])), default=0.0)
    return widest / 2 + SLACK


def _keep_top(scores: torch.Tensor, k: int) -> tuple[int, ...]:
    """Indices of the ``k`` highest scores, ascending (ties: the lower index)."""
    order = torch.argsort(-scores.float().cpu(), stable=True)[:k]
    return tuple(sorted(int(i) for i in order))


def _check_scores(scores: Sequence[torch.Tensor], count: int, size: int, what: str) -> None:
    if len(scores) != count or any(s.shape != (size,) or not torch.isfinite(s).all() for s in scores):
        raise VerificationError(f"the method must score {count} blocks x {size} {what} with finite numbers")


def select_plan(target: Structured, sparsity: float, scores: UnitScores, geo: Geometry) -> RemovalPlan:
    """The removal plan nearest ``sparsity`` that keeps the highest-scored units (module docstring)."""
    if isinstance(target, Depth):
        if scores.blocks is None or scores.blocks.shape != (geo.blocks,) or not torch.isfinite(scores.blocks).all():
            raise VerificationError(f"the method must score {geo.blocks} blocks with finite numbers")
        n = round(sparsity * geo.blocks)
        if n >= geo.blocks:
            raise InvalidSpecError(f"removing {sparsity:.0%} of {geo.blocks} blocks leaves none")
        keep = set(_keep_top(scores.blocks, geo.blocks - n))
        return RemovalPlan(target, sparsity, n / geo.blocks, _tolerance([i / geo.blocks for i in range(geo.blocks)]),
                           removed_blocks=tuple(i for i in range(geo.blocks) if i not in keep))
    if isinstance(target, Channels):
        _check_scores(scores.channels, geo.blocks, geo.channels, "channels")
        n = round(sparsity * geo.channels)
        if n >= geo.channels:
            raise InvalidSpecError(f"removing {sparsity:.0%} of {geo.channels} channels leaves none")
        return RemovalPlan(target, sparsity, n / geo.channels, _tolerance([i / geo.channels for i in range(geo.channels)]),
                           kept_channels=tuple(_keep_top(s, geo.channels - n) for s in scores.channels))
    if isinstance(target, Heads):
        if geo.heads is None:
            raise InvalidSpecError("this model's config derives the head size from the hidden size, so its heads cannot be removed")
        _check_scores(scores.heads, geo.blocks, geo.heads, "query heads")
        _check_scores(scores.kv_heads, geo.blocks, geo.kv_heads, "KV heads")
        k, n = geo.kv_heads, geo.group_size
        options = {(g, h): 1 - g * (h + 1) / (k * (n + 1)) for g in range(1, k + 1) for h in range(1, n + 1)}
        g, h = min(options, key=lambda o: (abs(options[o] - sparsity), -o[0], -o[1]))
        kept_q, kept_kv = [], []
        for q, kv in zip(scores.heads, scores.kv_heads):
            groups = _keep_top(q.float().cpu().reshape(k, n).sum(1) + kv.float().cpu(), g)
            kept_kv.append(groups)
            kept_q.append(tuple(grp * n + j for grp in groups for j in _keep_top(q[grp * n:(grp + 1) * n], h)))
        return RemovalPlan(target, sparsity, options[(g, h)], _tolerance(options.values()),
                           kept_heads=tuple(kept_q), kept_kv_heads=tuple(kept_kv))
    raise InvalidSpecError(f"{target} is not a structured target")


# -- unit scores from per-weight scores (the weight-score driver) ------------------------------------


@dataclass
class UnitAccumulator:
    """Sums a method's per-weight scores over each unit's weights, block by block.

    ``sides`` ``all``: every weight of the unit (its rows in the projections that produce it and
    its columns in the one that reads it); ``output``: only its columns in the projection that
    reads it (o_proj, down_proj), as FLAP's Wanda-sp scores.
    """

    target: Structured
    layout: StructureLayout
    geo: Geometry
    side: str = "all"
    heads: list[torch.Tensor] = field(default_factory=list)
    kv_heads: list[torch.Tensor] = field(default_factory=list)
    channels: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.target, Heads) and self.layout.attention is None:
            raise InvalidSpecError(f"{self.layout.family}-style blocks have no removable heads")

    def add_block(self, block: ModelBlock, score: Callable[[PrunableLayer], torch.Tensor]) -> None:
        def rows(path: str) -> torch.Tensor:
            return score(block_layer(block, path)).float().sum(1).cpu()

        def cols(path: str) -> torch.Tensor:
            return score(block_layer(block, path)).float().sum(0).cpu()

        full = self.side == "all"
        if isinstance(self.target, Channels):
            total = cols(self.layout.mlp_out)
            for path in self.layout.mlp_in if full else ():
                total = total + rows(path)
            self.channels.append(total)
        elif isinstance(self.target, Heads):
            q, k, v, o = self.layout.attention
            d = self.geo.head_dim
            per_head = cols(o).reshape(-1, d).sum(1)
            kv = torch.zeros(self.geo.kv_heads)
            if full:
                per_head = per_head + rows(q).reshape(-1, d).sum(1)
                kv = rows(k).reshape(-1, d).sum(1) + rows(v).reshape(-1, d).sum(1)
            self.heads.append(per_head)
            self.kv_heads.append(kv)
        else:
            raise InvalidSpecError(f"per-weight scores are summed over heads or channels, not {self.target}")

    def scores(self) -> UnitScores:
        return UnitScores(heads=tuple(self.heads), kv_heads=tuple(self.kv_heads), channels=tuple(self.channels))


# -- building the smaller model ------------------------------------------------------------------------


def _slices(block: ModelBlock, layout: StructureLayout, plan: RemovalPlan, i: int, d: int | None) -> dict[str, torch.Tensor]:
    """New tensors of block ``i``'s sliced projections, keyed by their state-dict name inside the block."""
    out: dict[str, torch.Tensor] = {}

    def put(path: str, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> None:
        for key, t in slice_linear(block_layer(block, path).module, out_keep, in_keep).items():
            out[f"{path}.{key}"] = t

    if plan.kept_channels:
        keep = torch.tensor(plan.kept_channels[i])
        for path in layout.mlp_in:
            put(path, keep, None)
        put(layout.mlp_out, None, keep)
    if plan.kept_heads:
        def expand(units: tuple[int, ...]) -> torch.Tensor:
            return torch.tensor([u * d + j for u in units for j in range(d)])

        q_keep, kv_keep = expand(plan.kept_heads[i]), expand(plan.kept_kv_heads[i])
        q, k, v, o = layout.attention
        put(q, q_keep, None)
        put(k, kv_keep, None)
        put(v, kv_keep, None)
        put(o, None, q_keep)
    return out


def shrink(adapter: ModelAdapter, model: nn.Module, plan: RemovalPlan) -> nn.Module:
    """A new model of the same class with ``plan``'s units removed: a smaller config (block count,
    per-block lists such as ``layer_types``, heads, KV heads, channels) and the kept weights."""
    layout = layout_of(adapter, model)
    geo = geometry(adapter, model)
    prefix, _ = adapter.block_list(model)
    blocks = adapter.blocks(model)
    kept = [i for i in range(geo.blocks) if i not in plan.removed_blocks]
    cfg = copy.deepcopy(model.config)
    setattr(cfg, layout.depth_key, len(kept))
    for key, value in list(vars(cfg).items()):
        if isinstance(value, list) and len(value) == geo.blocks and key != layout.depth_key:
            setattr(cfg, key, [value[i] for i in kept])  # per-block settings (layer_types, ...)
    if plan.kept_channels:
        setattr(cfg, layout.channels_key, len(plan.kept_channels[0]))
    if plan.kept_heads:
        setattr(cfg, layout.heads_key, len(plan.kept_heads[0]))
        setattr(cfg, layout.kv_heads_key, len(plan.kept_kv_heads[0]))
        setattr(cfg, layout.head_dim_key, geo.head_dim)
    replaced = {i: _slices(blocks[i], layout, plan, i, geo.head_dim) for i in kept}
    state: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        if key.startswith(prefix + "."):
            index, _, rest = key[len(prefix) + 1:].partition(".")
            if int(index) not in replaced:
                continue
            t = replaced[int(index)].get(rest, t)
            key = f"{prefix}.{kept.index(int(index))}.{rest}"
        state[key] = t
    param = next(model.parameters())
    small = type(model)(cfg).to(dtype=param.dtype)
    missing, unexpected = small.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")}  # tied to the input embedding
    if set(missing) - tied or unexpected:
        raise VerificationError(f"the shrunk model does not load: missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]}")
    if getattr(model, "generation_config", None) is not None:
        small.generation_config = copy.deepcopy(model.generation_config)
    return small.to(param.device).eval()
