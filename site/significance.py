"""What the site says about differences: the rows not distinguishable from the best, and Δ vs dense.

Rows are groups of runs that differ only in seed or in what they time, scored on one run per
seed (:meth:`Frames.per_seed`). Within a leaderboard, rows of the same model (and revision),
pattern and sparsity compete: per metric, the best row (by its value, in the metric's
direction) is marked ``best`` and every row whose paired comparison with it
(:func:`sparsebench.confidence.compare`: McNemar's exact test for accuracies of single runs, the
paired bootstrap otherwise) gives p >= ``ALPHA`` is marked as not distinguishable from it. Δ vs dense is the same comparison against the dense runs of the same
model, revision and suite identity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pandas as pd

from sparsebench.confidence import Comparison, ComparisonError, compare

from .frames import Frames, MetricKey

ALPHA = 0.05
BEST = "best"
TIE = "≈ best"
BEST_TITLE = "the best value among the runs of this model, pattern and sparsity"
TIE_TITLE = (f"not distinguishable from the best of this model, pattern and sparsity (paired test against the best, "
             f"α = {ALPHA:g}: McNemar's exact test for accuracies, the paired bootstrap otherwise)")


def best_marks(frames: Frames, rows: Sequence[Sequence[int]], keys: Sequence[MetricKey]) -> dict[tuple[int, MetricKey], str]:
    """``{(row index, metric): BEST or TIE}`` for ``rows`` (run-id lists of one leaderboard)."""
    runs = frames.runs.set_index("id")
    settings: dict[tuple, list[int]] = defaultdict(list)
    for i, ids in enumerate(rows):
        r = runs.loc[ids[0]]
        settings[(r["model"], r["model_revision"], r["suite"], r["suite_version"], r["pattern"], round(float(r["sparsity"]), 6))].append(i)
    marks: dict[tuple[int, MetricKey], str] = {}
    for members in settings.values():
        for key in keys:
            scored = [(i, items) for i in members if (items := frames.item_lists(rows[i], key))]
            if len(scored) < 2:
                continue
            higher = frames.higher.get(key, True)
            means = {i: sum(it.value() for it in items) / len(items) for i, items in scored}
            best = (max if higher else min)(means, key=means.__getitem__)
            best_items = dict(scored)[best]
            marks[(best, key)] = BEST
            for i, items in scored:
                if i == best:
                    continue
                try:
                    if compare(best_items, items).p_value >= ALPHA:
                        marks[(i, key)] = TIE
                except ComparisonError:  # not the same items: no claim either way
                    continue
    return marks


def dense_runs(frames: Frames, run_id: int) -> list[int]:
    """The dense runs of ``run_id``'s model, revision and suite identity (every seed)."""
    runs = frames.runs
    r = runs[runs["id"] == run_id].iloc[0]
    suite = r["spec"]["identity"]["suite"]
    same = runs[(runs["method"] == "dense") & (runs["model"] == r["model"]) & (runs["model_revision"] == r["model_revision"])]
    return [int(i) for i, spec in zip(same["id"], same["spec"]) if spec["identity"]["suite"] == suite]


def delta_vs_dense(frames: Frames, ids: Sequence[int], key: MetricKey) -> Comparison | None:
    """This row minus dense on ``key``, or None (no dense run, no items, or not the same items)."""
    dense = dense_runs(frames, ids[0])
    if not dense or set(dense) == set(ids):
        return None
    a, b = frames.item_lists(dense, key), frames.item_lists(ids, key)
    if not a or not b:
        return None
    try:
        return compare(a, b)
    except ComparisonError:
        return None


def delta_text(c: Comparison | None) -> str:
    if c is None:
        return ""
    return f"Δ vs dense {c.delta:+.3g} [{c.interval.low:+.3g}, {c.interval.high:+.3g}]"


def run_rows(runs: pd.DataFrame, groups: pd.Series) -> list[list[int]]:
    """Run-id lists of the groups of ``runs`` (``groups``: run id → group key), in the order of their first run."""
    order: dict[str, list[int]] = {}
    for run_id, group in zip(runs["id"], groups.reindex(runs["id"]).values):
        order.setdefault(group, []).append(int(run_id))
    return list(order.values())
