"""Table view-models for the templates, built from the results DataFrames with pandas.

Templates only loop over :class:`Table` rows and cells; every number is formatted and every
sort key computed here. ``Frames`` holds the database as DataFrames, loaded once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

BASELINES = ("dense", "random")  # always listed on a leaderboard, flagged, shown as "not run" when missing
STALE = "stale: the method's source has changed since this run; run it again to refresh it"
MetricKey = tuple[str, str, str]  # (task, task_version, metric)


def slug(name: str) -> str:
    """A file-name-safe slug; names that needed changing get a short hash so slugs stay unique."""
    s = re.sub(r"[^a-z0-9._-]+", "-", str(name).lower()).strip("-.")[:60] or "x"
    return s if s == name else f"{s}-{hashlib.sha1(str(name).encode()).hexdigest()[:8]}"


def fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def sort_key(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


@dataclass(frozen=True)
class Cell:
    text: str
    sort: str = ""
    href: str = ""
    badge: str = ""
    title: str = ""


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool = False
    title: str = ""


@dataclass(frozen=True)
class Provenance:
    run_href: str
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]
    cls: str = ""  # "baseline", "baseline missing"
    prov: Provenance | None = None


@dataclass(frozen=True)
class Table:
    id: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    caption: str = ""


@dataclass
class Frames:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    timings: pd.DataFrame
    values: pd.DataFrame = field(init=False)  # run id × (task, version, metric) → value
    stale: set[int] = field(init=False)  # runs whose method source has changed since they ran

    def __post_init__(self) -> None:
        from sparsebench.results import stale_runs

        self.runs = self.runs[self.runs["status"] == "completed"].copy() if not self.runs.empty else self.runs
        self.stale = stale_runs(self.runs) if not self.runs.empty else set()
        m = self.metrics
        if m.empty:
            self.values = pd.DataFrame(index=pd.Index([], name="run_id"))
            self.higher: dict[MetricKey, bool] = {}
        else:
            self.values = m.pivot_table(index="run_id", columns=["task", "task_version", "metric"], values="value", aggfunc="first")
            self.higher = {(r.task, r.task_version, r.metric): bool(r.higher_is_better) for r in m.itertuples()}

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


def metric_label(key: MetricKey, higher: bool) -> str:
    task, version, metric = key
    return f"{task} v{version} · {metric} {'↑' if higher else '↓'}"


def pruned_model_rows(t: pd.DataFrame) -> pd.DataFrame:
    """Timing rows of the pruned model itself: all but a structured run's baseline rows (the unpruned model)."""
    from sparsebench.kernel_choice import UNPRUNED

    if t.empty:
        return t
    return t[~t["details"].map(lambda d: isinstance(d, dict) and d.get("model_state") == UNPRUNED)]


def best_speedup(frames: Frames, run_id: int) -> tuple[float | None, str]:
    """Best measured end-to-end speedup of a run and how to describe it ("unsupported" is said so)."""
    t = pruned_model_rows(frames.run_timings(run_id))
    if t.empty:
        return None, "not measured"
    ok = t[t["status"] == "ok"]
    if ok.empty:
        return None, " / ".join(sorted(set(t["status"])))
    best = ok.loc[ok["speedup"].idxmax()]
    return float(best["speedup"]), f"{best['speedup']:.2f}× ({best['kernel']}, {best['scope']})"


def provenance(run: Any, root: str, stale: bool = False) -> Provenance:
    prov = run.provenance if isinstance(run.provenance, dict) else json.loads(run.provenance or "{}")
    packages = prov.get("packages", {}) if isinstance(prov, dict) else {}
    threads = prov.get("threads") if isinstance(prov, dict) else None
    return Provenance(
        f"{root}runs/{int(run.id)}.html",
        (
            ("date", str(run.created_at)[:19]),
            ("git sha", str(run.git_sha)[:12]),
            ("versions", f"sparsebench {run.sparsebench_version} · torch {run.torch_version} · "
                         f"transformers {run.transformers_version} · lm_eval {packages.get('lm_eval', '?')}"),
            ("hardware", f"{run.hardware} ({run.device}{f', {threads} threads' if threads else ''})"),
            ("model revision", str(run.model_revision)[:40]),
            ("method source", f"{str(run.method_source)[:12]}{' (changed since: stale)' if stale else ''}"),
            ("spec hash", str(run.spec_hash)[:16]),
        ),
    )


def run_command(method: str, model: str, suite: str, pattern: str = "unstructured", sparsity: float | None = None) -> str:
    """The ``sparsebench run`` command line for a spec, runnable as printed (quoted for a POSIX shell)."""
    from sparsebench.patterns import parse_pattern

    args = ["sparsebench", "run", "-m", method, "--model", model.removeprefix("local:"), "--suite", suite]
    if pattern != "unstructured":
        args += ["-p", pattern]
    if sparsity is not None and parse_pattern(pattern).implied_sparsity is None:
        args += ["-s", f"{sparsity:g}"]
    return shlex.join(args)


def run_table(frames: Frames, runs: pd.DataFrame, table_id: str, root: str, show_suite: bool = False,
              placeholders: Sequence[dict[str, Any]] = ()) -> Table:
    """One row per run: method, model, pattern, sparsity, every metric, best speedup, provenance."""
    keys = frames.metric_keys(runs["id"].tolist())
    cols = [Column("method"), Column("model")]
    if show_suite:
        cols.append(Column("suite"))
    cols += [Column("pattern"), Column("sparsity", True, "target"), Column("achieved", True, "measured on the pruned weights")]
    cols += [Column(metric_label(k, frames.higher.get(k, False)), True) for k in keys]
    cols += [Column("speedup", True, "best measured end-to-end speedup vs dense"), Column("seed", True), Column("provenance")]
    rows = []
    for r in runs.sort_values(["model", "pattern", "sparsity", "method", "id"]).itertuples():
        baseline, stale = r.method in BASELINES, int(r.id) in frames.stale
        speed, speed_text = best_speedup(frames, int(r.id))
        badge = " · ".join(b for b, on in (("baseline", baseline), ("stale", stale)) if on)
        cells = [Cell(r.method, r.method, f"{root}methods/{slug(r.method)}.html", badge, STALE if stale else ""),
                 Cell(r.model, r.model, f"{root}models/{slug(r.model)}.html")]
        if show_suite:
            cells.append(Cell(f"{r.suite} v{r.suite_version}", f"{r.suite} {r.suite_version}",
                              f"{root}leaderboards/{slug(r.suite + '-v' + r.suite_version)}.html"))
        cells += [Cell(r.pattern, r.pattern), Cell(fmt(r.sparsity, 3), sort_key(r.sparsity)),
                  Cell(fmt(r.achieved_sparsity), sort_key(r.achieved_sparsity))]
        cells += [Cell(fmt(v := frames.value(int(r.id), k)), sort_key(v)) for k in keys]
        cells += [Cell(speed_text, sort_key(speed)), Cell(str(r.seed), sort_key(r.seed)), Cell("details")]
        rows.append(Row(tuple(cells), " ".join(c for c, on in (("baseline", baseline), ("stale", stale)) if on),
                        provenance(r, root, stale)))
    for p in placeholders:
        cells = [Cell(p["method"], p["method"], f"{root}methods/{slug(p['method'])}.html", "baseline · not run",
                      f"run it: {p['command']}"), Cell(p["model"], p["model"], f"{root}models/{slug(p['model'])}.html")]
        if show_suite:
            cells.append(Cell(p["suite"], p["suite"]))
        cells += [Cell(p["pattern"], p["pattern"]), Cell(fmt(p["sparsity"], 3), sort_key(p["sparsity"])), Cell("—")]
        cells += [Cell("not run") for _ in keys] + [Cell("—"), Cell("—"), Cell(p["command"])]
        rows.append(Row(tuple(cells), "baseline missing"))
    return Table(table_id, tuple(cols), tuple(rows))


def missing_baselines(runs: pd.DataFrame, suite: str, version: str) -> list[dict[str, Any]]:
    """Placeholder rows for baselines a leaderboard lacks: dense per model, random per setting."""
    out = []
    for model, g in runs.groupby("model", sort=True):
        if not (g["method"] == "dense").any():
            out.append(dict(method="dense", model=model, suite=f"{suite} v{version}", pattern="unstructured", sparsity=0.0,
                            command=run_command("dense", model, suite)))
        pruned = g[~g["method"].isin(BASELINES)]
        randoms = {(p, round(s, 6)) for p, s in zip(g.loc[g["method"] == "random", "pattern"], g.loc[g["method"] == "random", "sparsity"])}
        for (pattern, sparsity), _ in pruned.groupby(["pattern", "sparsity"], sort=True):
            if (pattern, round(sparsity, 6)) not in randoms:
                out.append(dict(method="random", model=model, suite=f"{suite} v{version}", pattern=pattern, sparsity=sparsity,
                                command=run_command("random", model, suite, pattern, sparsity)))
    return out
