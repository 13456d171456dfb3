"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter, 2023, arXiv:2306.11695).

Score of weight ``W_ij`` (output ``i``, input ``j``)::

    S_ij = |W_ij| · ‖X_j‖₂

where ``‖X_j‖₂`` is the l2 norm of input feature ``j`` over all calibration tokens fed to
the layer (with the earlier blocks already pruned, as in the reference code). For
unstructured sparsity the scores compete within each output row (the paper's
"per-output" comparison group); N:M picks the top ``n`` of every ``m`` consecutive inputs.
No weight is updated.
"""

from __future__ import annotations

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.patterns import Group
from sparsebench.pruning import InputStatsMethod, MethodMeta, PruneContext, methods


def wanda_score(weight: torch.Tensor, input_norm: torch.Tensor) -> torch.Tensor:
    """``|W_ij| · ‖X_j‖₂`` for a ``[out, in]`` weight and the ``[in]`` input norms."""
    return weight.abs().float() * input_norm.reshape(1, -1).float()


@methods.register("wanda")
class Wanda(InputStatsMethod):
    """``S_ij = |W_ij| · ‖X_j‖₂``, compared within each output row."""

    meta = MethodMeta(
        "keep the largest |W|·‖X‖₂ in each output row (weights and activations)",
        paper="arXiv:2306.11695", citation="Sun et al., 2023",
        needs_calibration=True, group=Group.ROW,
    )

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        return wanda_score(layer.weight.detach(), self.inputs[layer].norm)
