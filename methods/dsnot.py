"""DSnoT: dynamic sparse no training (Zhang et al., 2023, arXiv:2310.08915; ICLR 2024).

Training-free prune-and-grow on top of an initial mask (Wanda's by default, or
SparseGPT's saliency ``w²/U_jj²`` without its weight updates). Per output row ``i``:

- expected reconstruction error ``ε_i = Σ_{j pruned} W_ij · x̄_j``, where ``x̄_j`` is input
  ``j`` summed over a sequence's tokens and averaged over sequences (the reference scale,
  against which ``update_threshold`` is set);
- grow: if ``ε_i > 0`` revive the pruned weight with the largest ``W_ij x̄_j / Var(X_j)^p``,
  otherwise the one with the smallest (``p = pow_of_var``);
- prune (unstructured): if ``ε_i ≥ 0`` drop the kept weight with ``W_ij x̄_j < 0`` and the
  lowest Wanda score ``|W_ij|·‖X_j‖₂``; otherwise the one with ``W_ij x̄_j > 0`` and the
  lowest score. N:M: drop the kept weight with the lowest initial score in the revived
  weight's group of ``m``, so every group keeps ``n``;
- a row swaps only while ``|ε_i| > update_threshold`` and the swap keeps the sign of the
  initial error; a row that stops stays stopped; at most ``max_cycles`` swaps per row.

The sparsity level never changes and weights are not updated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.errors import InvalidSpecError
from sparsebench.params import param
from sparsebench.patterns import NM, Group, Unstructured
from sparsebench.pruning import InputStatsMethod, MethodMeta, PruneContext, ScoreMethod, methods

from .wanda import wanda_score


@dataclass(frozen=True)
class DSnoTParams:
    initial: str = "wanda"  # a registered calibration score method: wanda or sparsegpt
    max_cycles: int = param(50, ge=0)
    update_threshold: float = param(0.1, ge=0)
    pow_of_var: float = param(1.0, ge=0)


def _pointer_pick(order: torch.Tensor, ptr: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Entry of each row's ``order`` at the front (side 0) or back (side 1) pointer."""
    pos = ptr.gather(1, side).clamp(0, order.shape[1] - 1)
    return order.gather(1, pos)


def dsnot_refine(
    keep: torch.Tensor,
    contrib: torch.Tensor,
    prune_score: torch.Tensor,
    grow_key: torch.Tensor,
    nm: NM | None,
    max_cycles: int,
    threshold: float,
) -> torch.Tensor:
    """Swap pruned and kept weights row by row to shrink the expected reconstruction error.

    ``keep`` [out, in] (same number pruned in every row), ``contrib = W ⊙ x̄``,
    ``prune_score`` ranks kept weights for removal (lowest first), ``grow_key`` ranks
    pruned weights for revival. Returns the new keep mask.
    """
    keep = keep.clone()
    rows, cols = keep.shape
    k = int((~keep[0]).sum())
    if k == 0 or k == cols or max_cycles < 1:
        return keep
    by_state = torch.argsort(keep.to(torch.int8), dim=1, stable=True)
    pruned_idx, kept_idx = by_state[:, :k], by_state[:, k:]
    grow_order = pruned_idx.gather(1, torch.argsort(grow_key.gather(1, pruned_idx), dim=1, stable=True))
    err = (contrib * (~keep)).sum(1, keepdim=True)
    sign0 = torch.sign(err)
    active = torch.ones_like(err, dtype=torch.bool)
    arange = torch.arange(rows, device=keep.device).unsqueeze(1)
    grow_ptr = torch.zeros(rows, 2, dtype=torch.long, device=keep.device)
    grow_ptr[:, 1] = k - 1
    step = torch.tensor([[1, -1]], device=keep.device).expand(rows, 2)
    if nm is None:
        # kept weights by ascending score, negatives (contribution < 0) first, then positives reversed
        by_score = kept_idx.gather(1, torch.argsort(prune_score.gather(1, kept_idx), dim=1, stable=True))
        neg = contrib.gather(1, by_score) < 0
        rank = torch.arange(by_score.shape[1], device=keep.device).expand_as(by_score)
        key = torch.where(neg, rank, 2 * by_score.shape[1] - rank)
        prune_order = by_score.gather(1, torch.argsort(key, dim=1, stable=True))
        prune_ptr = torch.zeros(rows, 2, dtype=torch.long, device=keep.device)
        prune_ptr[:, 1] = prune_order.shape[1] - 1
    else:
        touched = ~keep  # initially pruned or already swapped: never pruned (again)
    for _ in range(max_cycles):
        if not bool(active.any()):
            break
        gside = (err > 0).long()
        ok = grow_ptr[:, :1] <= grow_ptr[:, 1:]  # this row's grow list is not used up
        grow = _pointer_pick(grow_order, grow_ptr, gside)
        grow_ptr.scatter_add_(1, gside, step.gather(1, gside))
        if nm is None:
            pside = (err < 0).long()
            ok &= prune_ptr[:, :1] <= prune_ptr[:, 1:]
            prune = _pointer_pick(prune_order, prune_ptr, pside)
            prune_ptr.scatter_add_(1, pside, step.gather(1, pside))
        else:
            start = grow - grow % nm.m
            group = start + torch.arange(nm.m, device=keep.device).unsqueeze(0)
            cand = torch.where(touched.gather(1, group), torch.inf, prune_score.gather(1, group))
            best, pos = cand.min(dim=1, keepdim=True)
            prune = group.gather(1, pos)
            ok &= torch.isfinite(best)
        after = err + contrib.gather(1, prune) - contrib.gather(1, grow)
        active &= ok & (err.abs() > threshold) & (torch.sign(after) == sign0)
        swap = active.squeeze(1)
        r = arange[swap].squeeze(1)
        keep[r, prune[swap].squeeze(1)] = False
        keep[r, grow[swap].squeeze(1)] = True
        if nm is not None:
            touched[r, prune[swap].squeeze(1)] = True
        err = torch.where(active, after, err)
    return keep


@methods.register("dsnot")
class DSnoT(InputStatsMethod):
    """Prune-and-grow on a Wanda (or SparseGPT-saliency) mask to cut the expected output error."""

    Params = DSnoTParams
    meta = MethodMeta(
        "training-free prune-and-grow on a Wanda/SparseGPT mask to cut the expected output error",
        paper="arXiv:2310.08915", citation="Zhang et al., 2023",
        needs_calibration=True, group=Group.ROW, patterns=(Unstructured, NM),
    )
    moments = True  # the mean input x̄_j and its variance

    def __init__(self, params=None):
        super().__init__(params)
        base = methods.get(self.params.initial)
        if not (issubclass(base, ScoreMethod) and base.meta.needs_calibration) or base is type(self):
            raise InvalidSpecError(f"dsnot: initial must be a calibration score method (wanda, sparsegpt), got {self.params.initial!r}")
        self.base = base()

    def observe(self, ctx: PruneContext, layer: PrunableLayer, x: torch.Tensor) -> None:
        super().observe(ctx, layer, x)
        self.base.observe(ctx, layer, x)

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        return self.base.score(ctx, layer)

    def prune_layer(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        stats = self.inputs[layer]
        w = layer.weight.detach().float()
        initial = self.score(ctx, layer).float()
        keep = self.select(ctx, layer, initial)  # the initial mask, compared per row
        xbar = stats.sum.float() / max(stats.sequences, 1)  # Σ over a sequence, mean over sequences
        contrib = w * xbar.reshape(1, -1)
        grow_key = contrib / stats.var.clamp_min(1e-12).pow(self.params.pow_of_var).reshape(1, -1)
        nm = ctx.pattern if isinstance(ctx.pattern, NM) else None
        prune_score = initial if nm is not None else wanda_score(w, stats.norm)
        keep = dsnot_refine(keep, contrib, prune_score, grow_key, nm, self.params.max_cycles, self.params.update_threshold)
        layer.apply_mask(keep)
        return keep

    def release(self, ctx: PruneContext, layer: PrunableLayer) -> None:
        super().release(ctx, layer)
        self.base.release(ctx, layer)
