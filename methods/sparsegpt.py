"""SparseGPT (Frantar & Alistarh, 2023, arXiv:2301.00774): one-shot pruning with OBS reconstruction.

Per layer, with calibration inputs ``X`` (in × tokens):

- Hessian of the layer-wise squared error ``‖WX − ŴX‖²``: ``H = 2 X Xᵀ`` (averaged over
  tokens; the scale cancels), dampened by ``percdamp · mean(diag H)`` on the diagonal;
  inputs that never fire (``H_jj = 0``) get ``H_jj = 1`` and their weights are zeroed.
- ``U = chol(H⁻¹)ᵀ`` (upper Cholesky factor of the inverse), so that the row ``U_j,j:``
  holds the OBS update for eliminating column ``j`` given columns ``< j`` are fixed.
- Columns are processed left to right in blocks of ``blocksize`` (128) with lazy batch
  updates: inside a block, column ``j``'s pruned entries are zeroed, the error
  ``e = (w_j − q_j) / U_jj`` is propagated to the block's remaining columns
  (``W[:, j:] −= e U_j,j:``), and the block's accumulated errors update all later columns
  at once when the block ends.
- Adaptive mask selection with the shared selector (:func:`~sparsebench.masks.select_mask`):
  the saliency ``w² / U_jj²`` picks the mask per block of columns (unstructured: the lowest
  ``sparsity`` fraction of the whole row×block tile, as one layer; N:M: the lowest ``m − n``
  of every ``m`` columns, chosen when the group is reached, from the already-updated weights).
- The unstructured count per tile follows ``threshold``. ``reference`` (the default, as the
  authors' code): the tile's saliencies are sorted and every one ``<= sorted[int(n · s)]``
  is pruned, i.e. ``int(n · s) + 1`` weights plus ties per tile, one more than ``exact``,
  which prunes exactly ``round(n · s)``. The choice moves perplexity slightly; results
  carry it in their parameters.

Surviving weights are updated (``updates_weights=True``). ``score`` is the saliency of
the first block without updates (used by DSnoT's ``initial=sparsegpt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.errors import InvalidSpecError
from sparsebench.masks import Threshold, select_mask
from sparsebench.params import param
from sparsebench.patterns import NM, Group, Unstructured
from sparsebench.pruning import MethodMeta, PruneContext, ScoreMethod, methods


@dataclass(frozen=True)
class SparseGPTParams:
    blocksize: int = param(128, ge=1)  # columns per lazy-update block
    percdamp: float = param(0.01, ge=0, lt=1)  # dampening, as a fraction of the mean Hessian diagonal
    threshold: Literal["reference", "exact"] = "reference"  # unstructured count per tile (module docstring)


def add_to_hessian(h: torch.Tensor | None, count: int, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Running ``H = (2/T) Σ_t x_t x_tᵀ`` over ``T`` tokens; returns the new ``(H, T)``."""
    x = x.reshape(-1, x.shape[-1]).float()
    n = x.shape[0]
    if h is None:
        h = torch.zeros(x.shape[1], x.shape[1], device=x.device)
    h.mul_(count / (count + n))
    h.addmm_(x.t(), x, alpha=2.0 / (count + n))
    return h, count + n


def inverse_hessian_factor(h: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper Cholesky factor ``U`` of the dampened ``H⁻¹`` (``H⁻¹ = Uᵀ U``) and the dead-input mask."""
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h.diagonal().add_(percdamp * torch.mean(torch.diag(h)))
    factor = torch.linalg.cholesky(h)
    del h  # at most two in×in temporaries alive at once
    hinv = torch.cholesky_inverse(factor)
    del factor
    return torch.linalg.cholesky(hinv, upper=True), dead


def sparsegpt_reconstruct(
    weight: torch.Tensor, h: torch.Tensor, sparsity: float, nm: NM | None = None, blocksize: int = 128, percdamp: float = 0.01,
    threshold: Threshold = "reference",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune ``weight`` (``[out, in]``) with OBS updates; return ``(new weight, keep mask)``."""
    w = weight.detach().float().clone(memory_format=torch.contiguous_format)
    cols = w.shape[1]
    if nm is not None:
        nm.check_shape(tuple(w.shape))
        if blocksize % nm.m:
            raise InvalidSpecError(f"sparsegpt: blocksize {blocksize} must be a multiple of {nm.m} for {nm}")
    u, dead = inverse_hessian_factor(h.float(), percdamp)
    w[:, dead] = 0
    keep = torch.ones_like(w, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        w1 = w[:, i1:i2].clone()
        u1 = u[i1:i2, i1:i2]
        d = torch.diag(u1)
        err = torch.zeros_like(w1)
        k1 = torch.ones_like(w1, dtype=torch.bool)
        if nm is None:  # adaptive mask for the whole block, from its current (updated) weights
            k1 = select_mask(w1**2 / d.reshape(1, -1) ** 2, Unstructured(), sparsity, Group.LAYER, threshold)
        for j in range(i2 - i1):
            if nm is not None and j % nm.m == 0:
                window = slice(j, j + nm.m)
                k1[:, window] = select_mask(w1[:, window] ** 2 / d[window].reshape(1, -1) ** 2, nm, sparsity)
            col = w1[:, j]
            q = torch.where(k1[:, j], col, torch.zeros_like(col))
            e = (col - q) / d[j]
            w1[:, j:].addr_(e, u1[j, j:], alpha=-1.0)  # rank-1 OBS update of the block's remaining columns
            w1[:, j] = q
            err[:, j] = e
        w[:, i1:i2] = w1
        keep[:, i1:i2] = k1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return w, keep


@methods.register("sparsegpt")
class SparseGPT(ScoreMethod):
    """Hessian-based OBS pruning with weight reconstruction, lazy batch updates and adaptive masks."""

    Params = SparseGPTParams
    meta = MethodMeta(
        "OBS pruning with weight reconstruction from the calibration Hessian 2XXᵀ",
        paper="arXiv:2301.00774", citation="Frantar & Alistarh, 2023",
        needs_calibration=True, updates_weights=True, patterns=(Unstructured, NM),
    )

    def __init__(self, params=None):
        super().__init__(params)
        self.hessians: dict[str, tuple[torch.Tensor, int]] = {}

    def observe(self, ctx: PruneContext, layer: PrunableLayer, x: torch.Tensor) -> None:
        h, n = self.hessians.get(layer.name, (None, 0))
        self.hessians[layer.name] = add_to_hessian(h, n, x)

    def hessian(self, layer: PrunableLayer) -> torch.Tensor:
        if layer.name not in self.hessians:
            raise RuntimeError(f"no calibration inputs were observed for {layer.name}")
        return self.hessians[layer.name][0]

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        u, _ = inverse_hessian_factor(self.hessian(layer), self.params.percdamp)
        return layer.weight.detach().float() ** 2 / torch.diag(u).reshape(1, -1) ** 2

    def prune_layer(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        nm = ctx.pattern if isinstance(ctx.pattern, NM) else None
        w, keep = sparsegpt_reconstruct(
            layer.weight, self.hessian(layer), ctx.sparsity_for(layer), nm, self.params.blocksize, self.params.percdamp,
            self.params.threshold,
        )
        layer.set_weight(w)
        return keep

    def release(self, ctx: PruneContext, layer: PrunableLayer) -> None:
        self.hessians.pop(layer.name, None)
