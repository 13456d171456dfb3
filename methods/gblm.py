"""GBLM-Pruner: gradient-based language-model pruner (Das, Sun, Ma & Shen, 2023, arXiv:2311.04902).

Score of weight ``W_ij``::

    S_ij = |W_ij| · ‖α G_ij‖₂  +  |W_ij| · ‖X_j‖₂

- ``‖α G_ij‖₂ = sqrt(Σ_n (α g_n,ij)²)``: the l2 norm over calibration sequences ``n`` of the
  gradient of sequence ``n``'s mean-token language-modelling loss w.r.t. ``W_ij``, taken on
  the dense model, with the paper's scaling factor ``α = 100`` (``scale``);
- ``‖X_j‖₂ = sqrt(Σ_t x_tj² / N)``: Wanda's input norm with the reference code's
  normalisation by the number of sequences ``N`` (which sets the balance of the two terms).

Compared within each output row, like Wanda; no weight is updated. The gradient pass
needs the full model with one sequence's activations for backward, plus one float32
accumulator per targeted weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.params import param
from sparsebench.patterns import Group
from sparsebench.pruning import InputStatsMethod, MethodMeta, PruneContext, methods


@dataclass(frozen=True)
class GBLMParams:
    scale: float = param(100.0, ge=0)  # α, multiplies each sequence's gradient before the l2 norm


def gblm_score(weight: torch.Tensor, grad_norm: torch.Tensor, input_norm: torch.Tensor) -> torch.Tensor:
    """``|W|·‖αG‖₂ + |W|·‖X‖₂`` for ``[out, in]`` weight and gradient norms and ``[in]`` input norms."""
    w = weight.abs().float()
    return w * grad_norm.float() + w * input_norm.reshape(1, -1).float()


@methods.register("gblm")
class GBLM(InputStatsMethod):
    """``S_ij = |W_ij|·‖αG_ij‖₂ + |W_ij|·‖X_j‖₂`` (first-order gradient + Wanda term), per output row."""

    Params = GBLMParams
    meta = MethodMeta(
        "Wanda's |W|·‖X‖₂ plus |W|·‖αG‖₂ from per-sequence loss gradients",
        paper="arXiv:2311.04902", citation="Das et al., 2023",
        needs_calibration=True, needs_gradients=True, group=Group.ROW,
    )

    def __init__(self, params=None):
        super().__init__(params)
        self.grad_sq: dict[str, torch.Tensor] = {}

    def observe_gradient(self, ctx: PruneContext, layer: PrunableLayer, grad: torch.Tensor) -> None:
        g = grad.detach().float() * self.params.scale
        acc = self.grad_sq.get(layer.name)
        self.grad_sq[layer.name] = g * g if acc is None else acc.add_(g * g)

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        stats = self.inputs[layer]
        if layer.name not in self.grad_sq:
            raise RuntimeError(f"no gradients were observed for {layer.name}")
        input_norm = (stats.sq / max(stats.sequences, 1)).sqrt()
        grad_norm = self.grad_sq[layer.name].to(layer.weight.device).sqrt()
        return gblm_score(layer.weight.detach(), grad_norm, input_norm)

    def release(self, ctx: PruneContext, layer: PrunableLayer) -> None:
        super().release(ctx, layer)
        self.grad_sq.pop(layer.name, None)
