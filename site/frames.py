"""The results database as DataFrames, loaded once per site build, with per-run and per-group lookups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

MetricKey = tuple[str, str, str]  # (task, task_version, metric)


@dataclass
class Frames:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    timings: pd.DataFrame
    values: pd.DataFrame = field(init=False)  # run id × (task, version, metric) → value
    stale: set[int] = field(init=False)  # runs whose method source has changed since they ran
    groups: pd.Series = field(init=False)  # run id → the key of its leaderboard row (see sparsebench.comparison.quality_groups)
    prunings: pd.Series = field(init=False)  # run id → the key of its pruning (see sparsebench.comparison.pruning_groups)
    subsets: pd.Series = field(init=False)  # per run (aligned with ``runs``): "" or its --task list (see task_subsets)

    def __post_init__(self) -> None:
        from sparsebench.comparison import pruning_groups, quality_groups
        from sparsebench.results import stale_runs

        self.runs = self.runs[self.runs["status"] == "completed"].copy() if not self.runs.empty else self.runs
        self.stale = stale_runs(self.runs) if not self.runs.empty else set()
        self.groups = pd.Series(quality_groups(self.runs).values, index=self.runs["id"].values) if not self.runs.empty else pd.Series(dtype=str)
        self.prunings = pd.Series(pruning_groups(self.runs).values, index=self.runs["id"].values) if not self.runs.empty else pd.Series(dtype=str)
        self._seeds = dict(zip(self.runs["id"].astype(int), self.runs["seed"].astype(int))) if not self.runs.empty else {}
        self.subsets = task_subsets(self.runs) if not self.runs.empty else pd.Series(dtype=str)
        m = self.metrics
        self._rows: dict[tuple[int, MetricKey], Any] = {}
        self._items: dict[tuple[int, MetricKey], Any] = {}
        if m.empty:
            self.values = pd.DataFrame(index=pd.Index([], name="run_id"))
            self.higher: dict[MetricKey, bool] = {}
        else:
            self.values = m.pivot_table(index="run_id", columns=["task", "task_version", "metric"], values="value", aggfunc="first")
            self.higher = {(r.task, r.task_version, r.metric): bool(r.higher_is_better) for r in m.itertuples()}
            self._rows = {(int(r.run_id), (r.task, r.task_version, r.metric)): r for r in m.itertuples()}

    def per_seed(self, run_ids: Sequence[int]) -> list[int]:
        """The runs a row's quality is measured on, in seed order (see :func:`sparsebench.comparison.one_per_seed`)."""
        from sparsebench.comparison import one_per_seed

        return one_per_seed(run_ids, self._seeds)

    def spec_hash(self, run_id: int) -> str:
        return str(self.runs.loc[self.runs["id"] == run_id, "spec_hash"].iloc[0])

    def same_pruning(self, run_ids: Sequence[int]) -> list[int]:
        """``run_ids`` and every other run of the same pruning (whatever tasks it scored), in id order."""
        keys = self.prunings.reindex([int(i) for i in run_ids]).dropna()
        return sorted({int(i) for i in run_ids} | set(self.prunings.index[self.prunings.isin(keys)].astype(int)))

    def item_lists(self, run_ids: Sequence[int], key: MetricKey) -> list | None:
        """The per-item scores of ``key`` of each seed's run (:meth:`per_seed`; None unless every one has them)."""
        from sparsebench.items import ItemScores

        out = []
        for run_id in self.per_seed(run_ids):
            if (run_id, key) not in self._items:
                row = self._rows.get((run_id, key))
                payload = getattr(row, "items", None) if row is not None else None
                self._items[(run_id, key)] = ItemScores.from_payload(payload) if isinstance(payload, dict) else None
            if self._items[(run_id, key)] is None:
                return None
            out.append(self._items[(run_id, key)])
        return out

    def item_count(self, run_id: int, key: MetricKey) -> int | None:
        """How many items (documents, windows, queries, images) ``key`` of the run has, if stored."""
        items = self.item_lists([run_id], key)
        return len(items[0].ids) if items else None

    def estimate(self, run_ids: Sequence[int], key: MetricKey) -> Any:  # sparsebench.results.Estimate | None
        """The value (mean over seeds, one run each: :meth:`per_seed`) with its interval and sd over
        seeds, as ``sparsebench results`` shows it."""
        from sparsebench.results import estimate

        run_ids = self.per_seed(run_ids)
        rows = [self._rows[(i, key)] for i in run_ids if (i, key) in self._rows]
        if len(rows) != len(run_ids) or not rows:
            return None
        return estimate(pd.DataFrame(rows))

    def metric_keys(self, run_ids: Sequence[int]) -> list[MetricKey]:
        if self.values.empty:
            return []
        sub = self.values.reindex(list(run_ids)).dropna(axis=1, how="all")
        return sorted(sub.columns.tolist())

    def value(self, run_id: int, key: MetricKey) -> float | None:
        try:
            v = self.values.at[run_id, key]
        except KeyError:
            return None
        return None if pd.isna(v) else float(v)

    def run_timings(self, run_id: int) -> pd.DataFrame:
        t = self.timings
        return t[t["run_id"] == run_id] if not t.empty else t


def task_subsets(runs: pd.DataFrame) -> pd.Series:
    """Per run: "" when it evaluated its suite's own task list (or the suite is not registered
    here), else its task list (``--task``): such runs get a leaderboard of their own beside the suite's."""
    from sparsebench.suites import suites

    def subset(r: Any) -> str:
        names = list((r.tasks or {}).get("names", [])) if isinstance(r.tasks, dict) else []
        entry = suites.get(r.suite) if r.suite in suites else None
        own = entry is not None and entry.version == r.suite_version and names and names != list(entry.tasks)
        return "+".join(names) if own else ""

    return pd.Series([subset(r) for r in runs.itertuples()], index=runs.index, dtype=str)
