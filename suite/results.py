"""Views of stored results for ``sparsebench results`` and ``run``.

- :func:`compact`: one row per run, the suite's headline metrics as columns (each task's
  primary metric, as lm-eval's summary table shows them);
- :func:`long_form`: one row per run, task and metric, with the metric's details (split,
  subset seed and hash, data source, ...) nested (``json``) or flattened to ``details.*``
  columns (``csv``);
- :func:`stale_runs`: the runs whose method source has changed since they were stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def compact(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per run: method, model, pattern, sparsity, achieved, then one column per task
    with the task's primary metric (a column per version where versions differ)."""
    if runs.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    m = metrics[metrics["run_id"].isin(runs["id"])]
    versions = m.groupby("task")["task_version"].nunique()
    columns: dict[tuple[str, str], str] = {}
    for task, version in m[["task", "task_version"]].drop_duplicates().itertuples(index=False):
        columns[(task, version)] = f"{task} v{version}" if versions[task] > 1 else task
    chosen = []
    for (run_id, task, version), g in m.groupby(["run_id", "task", "task_version"], sort=False):
        primary = _primary_metric(task)
        row = g[g["metric"] == primary].iloc[0] if primary in set(g["metric"]) else g.iloc[0]
        chosen.append((run_id, columns[(task, version)], row["value"]))
    values = pd.DataFrame(chosen, columns=["id", "column", "value"]).pivot(index="id", columns="column", values="value")
    out = pd.DataFrame({
        "id": runs["id"].values,
        "method": [_method_label(m_, p) for m_, p in zip(runs["method"], runs["method_params"])],
        "model": runs["model"].map(lambda s: s.removeprefix("local:")).values,
        "pattern": runs["pattern"].values,
        "sparsity": runs["sparsity"].values,
        "achieved": runs["achieved_sparsity"].values,
    })
    if runs["suite"].nunique() > 1 or runs["suite_version"].nunique() > 1:
        out.insert(3, "suite", [f"{s} v{v}" for s, v in zip(runs["suite"], runs["suite_version"])])
    ordered = list(dict.fromkeys(columns.values()))
    return out.join(values.reindex(columns=ordered), on="id")


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
