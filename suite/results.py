"""Views of stored results for ``sparsebench results`` and ``run``.

- :func:`compact`: one row per run (or per group of runs that differ only in seed or in what
  they time: mean, ± sd over seeds, number of seeds), the suite's headline metrics as columns (each task's
  primary metric, as lm-eval's summary table shows them) with their 95% intervals;
- :func:`long_form`: one row per run, task and metric, with the metric's details (split,
  subset seed and hash, data source, ...) nested (``json``) or flattened to ``details.*``
  columns (``csv``);
- :func:`latency`: a run's end-to-end timings, each speedup beside its p10-p90 range and limits;
- :func:`stale_runs`: the runs whose method source has changed since they were stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .source_hash import current_method_source

RUN_COLUMNS = ["id", "method", "model", "pattern", "sparsity", "achieved"]
LONG_COLUMNS = ["id", "method", "method_params", "model", "pattern", "sparsity", "achieved_sparsity", "suite", "suite_version",
                "task", "task_version", "metric", "value", "stderr", "ci_low", "ci_high", "ci_resamples", "ci_seed", "n", "seed",
                "prune_time_s", "eval_time_s", "peak_memory_mb", "device", "created_at", "spec_hash", "details"]


def _primary_metric(task: str) -> str | None:
    from .task import tasks

    return tasks.get(task).meta.metric if task in tasks else None


def _method_label(method: str, params: Mapping[str, Any]) -> str:
    """The method with the parameters that differ from its defaults (all of them if it is not registered here)."""
    import dataclasses

    from .pruning import methods

    defaults: dict[str, Any] = {}
    if method in methods:
        cls = methods.get(method)
        defaults = json.loads(json.dumps(dataclasses.asdict(cls.Params()), default=str))
    shown = {k: v for k, v in (params or {}).items() if defaults.get(k, object()) != v}
    return method + (f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else "")


@dataclass(frozen=True)
class Estimate:
    """One metric of one run, or of runs that differ only in seed: the value (the mean over
    seeds), the 95% interval (over items; over items and seeds for several seeds) and the sd
    over seeds."""

    value: float
    low: float | None = None
    high: float | None = None
    sd: float | None = None  # only for several seeds
    seeds: int = 1

    def text(self) -> str:
        """``0.58 [0.48, 0.67]`` for one run, ``0.58 ±0.012 [0.47, 0.68]`` (± the sd over seeds) for several.

        The value has 4 significant digits and the interval's ends 3 (a bootstrap percentile such as 0.6502
        says no more than 0.65); numbers of 100 or more (ends) or 10,000 or more (values) are whole numbers,
        not exponents, up to a million: ``2622 [2286, 3113]``, ``47594 [31773, 83461]``; beyond it,
        where the digits say nothing (a collapsed model's perplexity), 3 significant digits:
        ``5.68e+13 [4.85e+12, 6.73e+14]``.
        """

        def end(x: float) -> str:
            return f"{x:.0f}" if 100 <= abs(x) < 1e6 else f"{x:.3g}"

        value = f"{self.value:.3g}" if abs(self.value) >= 1e6 else f"{self.value:.0f}" if abs(self.value) >= 1e4 else f"{self.value:.4g}"
        sd = f" ±{self.sd:.2g}" if self.sd is not None else ""
        ci = f" [{end(self.low)}, {end(self.high)}]" if self.low is not None and self.high is not None else ""
        return f"{value}{sd}{ci}"


def estimate(rows: pd.DataFrame) -> Estimate:
    """The :class:`Estimate` of one metric's rows (``Store.metrics()`` rows, one per run of a seed group)."""
    from .confidence import seed_sd, seed_summary
    from .items import ItemScores

    if len(rows) == 1:
        r = rows.iloc[0]
        return Estimate(float(r["value"]), _num(r.get("ci_low")), _num(r.get("ci_high")))
    values = rows["value"].astype(float)
    if "items" in rows and rows["items"].notna().all():
        s = seed_summary([ItemScores.from_payload(p) for p in rows["items"]])
        return Estimate(s.mean, s.interval.low, s.interval.high, s.sd, s.seeds)
    return Estimate(float(values.mean()), None, None, seed_sd(values), len(rows))


def _num(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def compact(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per run, or per group of runs that differ only in seed or in what they time, as
    the leaderboard's rows (ids joined with commas, and a ``seeds`` column; each seed counted
    once: :func:`~sparsebench.comparison.one_per_seed`): method, model, pattern, sparsity,
    achieved, then one column per task with its primary metric as :meth:`Estimate.text` (a
    column per version where versions differ)."""
    from .comparison import one_per_seed, quality_groups

    if runs.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    m = metrics[metrics["run_id"].isin(runs["id"])]
    versions = m.groupby("task")["task_version"].nunique()
    columns: dict[tuple[str, str], str] = {}
    for task, version in m[["task", "task_version"]].drop_duplicates().itertuples(index=False):
        columns[(task, version)] = f"{task} v{version}" if versions[task] > 1 else task
    primary = m[[metric == (_primary_metric(task) or metric) for task, metric in zip(m["task"], m["metric"])]]
    primary = primary.drop_duplicates(["run_id", "task", "task_version"])
    groups = runs.assign(group=quality_groups(runs).values).groupby("group", sort=False)
    seed_of = dict(zip(runs["id"].astype(int), runs["seed"].astype(int)))
    rows = []
    for _, group in groups:
        g = runs.set_index("id").loc[one_per_seed(group["id"], seed_of)].reset_index()
        first = g.iloc[0]
        row = {
            "id": ",".join(str(i) for i in sorted(group["id"])),
            "method": _method_label(first["method"], first["method_params"]),
            "model": first["model"].removeprefix("local:"),
            "suite": f"{first['suite']} v{first['suite_version']}",
            "pattern": first["pattern"],
            "sparsity": first["sparsity"],
            "achieved": float(g["achieved_sparsity"].mean()),
            "seeds": len(g),
        }
        mine = primary[primary["run_id"].isin(g["id"])]
        mine = mine.iloc[mine["run_id"].map(seed_of).argsort(kind="stable")]  # resampled in seed order, as on the site
        for (task, version), rows_ in mine.groupby(["task", "task_version"], sort=False):
            row[columns[(task, version)]] = estimate(rows_).text() if rows_["run_id"].nunique() == len(g) else "incomplete"
        rows.append(row)
    out = pd.DataFrame(rows)
    if runs["suite"].nunique() == 1 and runs["suite_version"].nunique() == 1:
        out = out.drop(columns=["suite"])
    if (out["seeds"] == 1).all():
        out = out.drop(columns=["seeds"])
    ordered = list(dict.fromkeys(columns.values()))
    return out.reindex(columns=[c for c in out.columns if c not in ordered] + ordered)


def timing_range(timings: pd.DataFrame, row: Any) -> tuple[float, float] | None:
    """The p10-p90 range (:func:`~sparsebench.timing.speedup_range`) of timing ``row``'s speedup,
    against the ``dense`` row its run timed in the same scope; None where either lacks percentiles."""
    from .timing import speedup_range

    dense = timings[(timings["run_id"] == row.run_id) & (timings["scope"] == row.scope) & (timings["kernel"] == "dense")
                    & (timings["status"] == "ok")]
    if dense.empty:
        return None
    d = dense.iloc[0]
    ends = [_num(v) for v in (d["p10_s"], d["p90_s"], row.p10_s, row.p90_s)]
    if any(v is None for v in ends):
        return None
    return speedup_range((ends[0], ends[1]), (ends[2], ends[3]))


def speedup_text(timings: pd.DataFrame, row: Any) -> str:
    """``1.35× [1.13, 1.55]``: the median speedup of timing ``row`` and its p10-p90 range."""
    spread = timing_range(timings, row)
    return f"{row.speedup:.2f}×" + (f" [{spread[0]:.2f}, {spread[1]:.2f}]" if spread else "")


REFERENCE_SPEEDUP = "1.00× (reference)"  # the dense model every speedup is a ratio to


def latency(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per end-to-end timing (``Store.timings()`` rows; per-layer rows are left out): the
    run, scope, kernel and status, the median, the speedup with its p10-p90 range, and the
    limits it is read against (the FLOP ideal, the bytes bound); the reason where not ``ok``."""
    cols = ["run", "scope", "kernel", "status", "median_ms", "speedup [p10-p90]", "ideal", "bytes_bound", "hardware", "reason"]
    t = timings[timings["scope"] != "layer"] if not timings.empty else timings
    per_run = dict(tuple(t.groupby("run_id"))) if not t.empty else {}  # a row's range is read against its own run's dense row
    rows = []
    for r in t.itertuples():
        ok = r.status == "ok"
        details = r.details if isinstance(r.details, dict) else {}
        rows.append({"run": r.run_id, "scope": r.scope, "kernel": r.kernel, "status": r.status,
                     "median_ms": f"{r.median_s * 1e3:.4g}" if ok else "-", "speedup [p10-p90]": (REFERENCE_SPEEDUP if r.kernel == "dense" else speedup_text(per_run[r.run_id], r)) if ok else "-",
                     "ideal": f"{r.ideal_speedup:.2f}×" if _num(r.ideal_speedup) else "-",
                     "bytes_bound": f"{details['bytes_bound']:.2f}×" if details.get("bytes_bound") else "-",
                     "hardware": r.hardware, "reason": r.reason or ""})
    out = pd.DataFrame(rows, columns=cols)
    return out.drop(columns=["reason"]) if not out["reason"].any() else out


def long_form(results: pd.DataFrame) -> pd.DataFrame:
    """One row per run, task and metric (``Store.results()``), in a stable column order."""
    return results[[c for c in LONG_COLUMNS if c in results]]


def flatten_details(df: pd.DataFrame) -> pd.DataFrame:
    """The ``details`` dict column spread into ``details.<key>`` columns (nested keys dotted), for CSV."""
    if "details" not in df:
        return df
    details = pd.json_normalize([d if isinstance(d, dict) else {} for d in df["details"]]).add_prefix("details.")
    details.index = df.index
    params = df["method_params"].map(lambda p: json.dumps(p, sort_keys=True)) if "method_params" in df else None
    out = df.drop(columns=["details"]).join(details)
    if params is not None:
        out["method_params"] = params
    return out


def stale_runs(runs: pd.DataFrame) -> set[int]:
    """Ids of the runs whose method's source (in this installation) differs from the one they
    were run with. Runs of methods not registered here cannot be checked and are not listed."""
    current: dict[tuple[str, str], str | None] = {}
    stale = set()
    for run_id, method, params, stored in zip(runs["id"], runs["method"], runs["method_params"], runs["method_source"]):
        key = (method, json.dumps(params, sort_keys=True))
        if key not in current:
            current[key] = current_method_source(method, params or {})
        if current[key] is not None and current[key] != stored:
            stale.add(int(run_id))
    return stale
