"""Random pruning: i.i.d. uniform scores, seeded per run and layer. The floor of the table."""

from __future__ import annotations

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.pruning import MethodMeta, PruneContext, ScoreMethod, methods


@methods.register("random")
class RandomPruning(ScoreMethod):
    """``score_ij ~ U(0, 1)`` from a generator seeded by (run seed, layer name)."""

    meta = MethodMeta("uniformly random mask; the baseline every method must beat")

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        g = ctx.generator(layer.name)
        return torch.rand(layer.shape, generator=g).to(layer.weight.device)
