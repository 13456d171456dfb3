"""Magnitude pruning: score = |W_ij| (Han et al., 2015, arXiv:1506.02626).

Compared within each layer by default; the ``unstructured-global`` pattern compares all
layers against one threshold (as in Frankle & Carbin's lottery-ticket experiments).
"""

from __future__ import annotations

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.pruning import MethodMeta, PruneContext, ScoreMethod, methods


@methods.register("magnitude")
class Magnitude(ScoreMethod):
    """Keep the weights with the largest absolute value: ``score_ij = |W_ij|``."""

    meta = MethodMeta("keep the largest |W| per layer (or globally)", paper="arXiv:1506.02626", citation="Han et al., 2015")

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        return layer.weight.detach().abs()
