"""The dense baseline: no pruning. Every leaderboard compares against it."""

from __future__ import annotations

from sparsebench.masks import Masks
from sparsebench.method import Method, MethodMeta, PruneContext, methods


@methods.register("dense")
class Dense(Method):
    """Leaves the model untouched (its masks keep everything)."""

    meta = MethodMeta("no pruning; the reference every result is compared with", prunes=False)

    def prune(self, ctx: PruneContext) -> Masks:
        return {}
