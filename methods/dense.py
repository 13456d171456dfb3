"""The dense baseline: no pruning. Every leaderboard compares against it."""

from __future__ import annotations

from sparsebench.pruning import Method, MethodMeta, methods


@methods.register("dense")
class DenseBaseline(Method):
    """Leaves the model untouched: no weight is zeroed and no mask is returned."""

    meta = MethodMeta("no pruning; the reference every result is compared with", prunes=False)
