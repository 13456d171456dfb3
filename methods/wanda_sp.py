"""Wanda-sp: Wanda's score summed over structures (An et al., 2024, arXiv:2312.11983, the FLAP
paper's structured Wanda baseline; Wanda: Sun et al., 2023, arXiv:2306.11695).

Importance of an attention head or an MLP channel::

    S = Σ_{i, j ∈ unit} |W_ij| · ‖X_j‖₂

over the unit's columns in the projection that reads it: head ``h``'s ``head_dim`` input
columns of the attention output projection (o_proj), channel ``c``'s input column of the MLP
down projection, with ``‖X_j‖₂`` that projection's input norm on the calibration tokens of the
dense model (as FLAP's ``wanda_sp`` scores them). A KV group scores the sum of its query
heads. The lowest-scored heads (``--pattern heads``) or channels (``--pattern channels``) go,
the same number in every block; FLAP's own fluctuation metric, adaptive structure and bias
compensation are not part of this baseline. No weight is updated.
"""

from __future__ import annotations

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.patterns import Channels, Heads
from sparsebench.pruning import InputStatsMethod, MethodMeta, PruneContext, methods

from .wanda import wanda_score


@methods.register("wanda-sp")
class WandaSP(InputStatsMethod):
    """``Σ |W|·‖X‖₂`` over each head's / channel's columns of the output projection."""

    meta = MethodMeta(
        "remove the heads / MLP channels of lowest Σ|W|·‖X‖₂ over their output-projection columns",
        paper="arXiv:2312.11983", citation="An et al., 2024",
        needs_calibration=True, patterns=(Heads, Channels), unit_weights="output",
    )

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        return wanda_score(layer.weight.detach(), self.inputs[layer].norm)
