"""Comparisons of stored runs on the same items: ``sparsebench compare`` and its Python API.

:func:`compare_runs` takes two runs (ids or spec-hash prefixes), checks that they scored the
same items (same suite identity, model and revision, task versions and item ids; otherwise a
one-line :class:`~sparsebench.confidence.ComparisonError` naming what differs) and returns one
row per shared metric: A, B, Δ = B − A, its paired-bootstrap interval and a p-value (see
:mod:`sparsebench.confidence` for which test gives it). With ``all_seeds`` each side is every
stored run that differs from it only in seed (or in what it times), one run per seed.

:func:`compare_metrics` is the same on already loaded metric rows (the site uses it);
:func:`quality_groups` groups runs that differ only in seed or in what they time (the rows of
``results`` and of the leaderboard), and :func:`one_per_seed` picks the runs such a row's
quality is measured on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from .confidence import LEVEL, RESAMPLES, SEED, ComparisonError, compare
from .items import ItemScores
from .spec import pruning_group, quality_group
from .store import Store

COLUMNS = ["task", "task_version", "metric", "higher_is_better", "a", "b", "delta", "ci_low", "ci_high", "level", "p_value", "test",
           "items", "seeds_a", "seeds_b", "resamples", "seed"]
HEX = set("0123456789abcdef")


def resolve_run(store: Store, ref: str) -> int:
    """The completed run ``ref`` names: a run id as ``results`` shows it, or a unique prefix of its spec hash."""
    ref = ref.strip().lower()
    runs = store.runs(status="completed")
    if ref.isdigit() and int(ref) in set(runs["id"]):
        return int(ref)
    if len(ref) >= 4 and set(ref) <= HEX:
        hits = runs[runs["spec_hash"].str.startswith(ref)]
        if len(hits) == 1:
            return int(hits["id"].iloc[0])
        if len(hits) > 1:
            raise ComparisonError(f"spec hash prefix {ref!r} matches {len(hits)} runs ({', '.join(map(str, hits['id'][:5]))}); give more digits")
    raise ComparisonError(f"no completed run {ref!r} (give a run id from `sparsebench results` or a spec-hash prefix of 4+ digits)")


def quality_groups(runs: pd.DataFrame) -> pd.Series:
    """For each run, the key it shares with the runs that differ from it only in seed or in what they time."""
    return runs["spec"].map(lambda spec: quality_group(spec["identity"])) if not runs.empty else pd.Series(dtype=str)


def pruning_groups(runs: pd.DataFrame) -> pd.Series:
    """For each run, the key it shares with the runs of the same pruning, whatever tasks they scored
    (see :func:`sparsebench.spec.pruning_group`)."""
    return runs["spec"].map(lambda spec: pruning_group(spec["identity"])) if not runs.empty else pd.Series(dtype=str)


def one_per_seed(run_ids: Iterable[int], seed_of: Mapping[int, int]) -> list[int]:
    """The runs a row's quality is measured on, in seed order: one per seed of ``run_ids``, the
    first stored (lowest id) where a run that times kernels and its untimed twin scored the same
    seed, so a seed counts once however many of its runs were timed. A run missing from
    ``seed_of`` counts as a seed of its own."""
    first: dict[int, int] = {}
    for run_id in sorted(int(i) for i in run_ids):
        first.setdefault(seed_of.get(run_id, -1 - run_id), run_id)
    return [first[seed] for seed in sorted(first)]


def items_by_metric(metrics: pd.DataFrame, run_ids: Iterable[int]) -> dict[tuple[str, str, str], list[ItemScores]]:
    """``{(task, task_version, metric): [items of each run]}`` for the metrics every one of ``run_ids`` has with items."""
    ids = list(run_ids)
    m = metrics[metrics["run_id"].isin(ids) & metrics["items"].notna()]
    out: dict[tuple[str, str, str], list[ItemScores]] = {}
    for key, g in m.groupby(["task", "task_version", "metric"], sort=True):
        if g["run_id"].nunique() == len(ids):
            out[key] = [ItemScores.from_payload(p) for p in g.sort_values("run_id")["items"]]
    return out


def _check_same_protocol(runs: pd.DataFrame, a: Sequence[int], b: Sequence[int]) -> None:
    by_id = runs.set_index("id")
    ra, rb = by_id.loc[a[0]], by_id.loc[b[0]]
    sa, sb = ra["spec"]["identity"]["suite"], rb["spec"]["identity"]["suite"]
    if sa != sb:
        raise ComparisonError(f"the suite identity differs: {sa['name']} v{sa['version']} (settings {sa['settings'][:12]}) vs "
                              f"{sb['name']} v{sb['version']} (settings {sb['settings'][:12]})")
    for col, what in (("model", "model"), ("model_revision", "model revision")):
        if ra[col] != rb[col]:
            raise ComparisonError(f"the {what} differs: {ra[col]} vs {rb[col]}")


def compare_metrics(metrics: pd.DataFrame, a: Sequence[int], b: Sequence[int], metric: str | None = None,
                    resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """One row per metric both sides have with items (``metric``: only that metric name, or ``task/metric``)."""
    m = metrics[metrics["run_id"].isin([*a, *b])]
    for task in sorted(set(m["task"])):
        in_a, in_b = (set(m.loc[(m["task"] == task) & m["run_id"].isin(side), "task_version"]) for side in (a, b))
        if in_a and in_b and in_a != in_b:
            raise ComparisonError(f"task {task} has version {'/'.join(sorted(in_a))} in A but {'/'.join(sorted(in_b))} in B")
    items_a, items_b = items_by_metric(metrics, a), items_by_metric(metrics, b)
    keys = [k for k in items_a if k in items_b and (metric is None or metric in (k[2], f"{k[0]}/{k[2]}"))]
    if not keys:
        shared = sorted(f"{t}/{n}" for t, _, n in set(items_a) & set(items_b))
        raise ComparisonError(f"no metric {metric!r} with per-item scores in both; shared: {', '.join(shared) or 'none'}"
                              if metric else "the runs share no metric with per-item scores")
    higher = {(r.task, r.task_version, r.metric): bool(r.higher_is_better) for r in m.itertuples()}
    rows = []
    for key in keys:
        try:
            c = compare(items_a[key], items_b[key], resamples, seed, level)
        except ComparisonError as exc:
            raise ComparisonError(f"{key[0]}/{key[2]}: {exc}") from None
        rows.append(dict(task=key[0], task_version=key[1], metric=key[2], higher_is_better=higher[key], a=c.a, b=c.b, delta=c.delta,
                         ci_low=c.interval.low, ci_high=c.interval.high, level=level, p_value=c.p_value, test=c.test, items=c.items,
                         seeds_a=len(a), seeds_b=len(b), resamples=resamples, seed=seed))
    return pd.DataFrame(rows, columns=COLUMNS)


def compare_runs(store: Store, run_a: str | int, run_b: str | int, metric: str | None = None, all_seeds: bool = False,
                 **kw: Any) -> pd.DataFrame:
    """B − A for two stored runs on the same items. A side may be the runs of one row of
    ``results`` (``"4,5,6"``: runs that differ only in seed or in what they time), each seed
    counted once (:func:`one_per_seed`); with ``all_seeds`` each side is every stored run that
    differs from it only in seed or in what it times."""
    runs = store.runs(status="completed")
    ids = runs["id"].astype(int).values
    groups = pd.Series(quality_groups(runs).values, index=ids)
    seed_of = dict(zip(ids, runs["seed"].astype(int)))
    sides = [sorted({resolve_run(store, part) for part in str(ref).split(",") if part.strip()}) for ref in (run_a, run_b)]
    for ref, side in zip((run_a, run_b), sides):
        if not side:
            raise ComparisonError(f"no run given in {str(ref)!r}")
        if groups[side].nunique() > 1:
            raise ComparisonError(f"runs {ref} differ in more than their seed (or what they time); give runs of one row of "
                                  "`sparsebench results`")
    if all_seeds:
        sides = [groups.index[groups == groups[side[0]]] for side in sides]
    sides = [one_per_seed(side, seed_of) for side in sides]
    _check_same_protocol(runs, sides[0], sides[1])
    out = compare_metrics(store.metrics(sides[0] + sides[1]), sides[0], sides[1], metric, **kw)
    out.attrs.update(runs_a=sides[0], runs_b=sides[1])
    return out
