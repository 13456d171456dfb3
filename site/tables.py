"""Table view-models for the templates, built from the results DataFrames with pandas.

Templates only loop over :class:`Table` rows and cells; every number is formatted and every
sort key computed here from :class:`~.frames.Frames` (the database as DataFrames, loaded once).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sparsebench.results import REFERENCE_SPEEDUP, speedup_text

from .frames import Frames, MetricKey
from .significance import BEST, BEST_TITLE, TIE_TITLE, best_marks, delta_text, delta_vs_dense, run_rows

BASELINES = ("dense", "random")  # always listed on a leaderboard, flagged, shown as "not run" when missing
STALE = "stale: the method's source has changed since this run; run it again to refresh it"


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
    mark: str = ""  # "best" or "≈ best" (site.significance)
    note: str = ""  # a second line, e.g. Δ vs dense


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool = False
    title: str = ""
    wrap: bool = False  # long prose: wraps instead of widening the table


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


NOT_MEASURED = "not measured"
REFERENCE_TITLE = "nothing pruned: the dense model every speedup is measured against, timed beside each pruned one"


def metric_label(key: MetricKey, higher: bool) -> str:
    task, version, metric = key
    return f"{task} v{version} · {metric} {'↑' if higher else '↓'}"


def pruned_model_rows(t: pd.DataFrame) -> pd.DataFrame:
    """Timing rows of the pruned model itself: all but a structured run's baseline rows (the unpruned model)."""
    from sparsebench.kernel_choice import UNPRUNED

    if t.empty:
        return t
    return t[~t["details"].map(lambda d: isinstance(d, dict) and d.get("model_state") == UNPRUNED)]


def best_speedup(frames: Frames, run_ids: Sequence[int]) -> tuple[float | None, str, str]:
    """Best measured end-to-end speedup of a row's pruning and how to describe it: the median ratio
    with its p10-p90 range (:func:`~sparsebench.results.speedup_text`), kernel and phase ("unsupported" is
    said so). A row scored on other tasks than the run that timed its pruning (``--task``) shows
    that run's speedup, naming its spec hash (a stable name: ``results/runs/MODEL/HASH.json``,
    ``sparsebench compare HASH ...``): the pruned model is the same. The third value says where
    it was timed (hardware and threads, dtype, cache regime): rows of one board may come from
    different machines."""
    ids = frames.same_pruning(run_ids) if run_ids else []
    t = pruned_model_rows(pd.concat([frames.run_timings(i) for i in ids])) if ids else frames.timings.iloc[:0]
    if t.empty:
        return None, NOT_MEASURED, ""
    ok = t[t["status"] == "ok"]
    if ok.empty:
        return None, " / ".join(sorted(set(t["status"]))), ""
    best = ok.loc[ok["speedup"].idxmax()]
    timed_by = int(best["run_id"])
    elsewhere = "" if timed_by in {int(i) for i in run_ids} else f"; timed by {frames.spec_hash(timed_by)[:8]}"
    spread = speedup_text(frames.run_timings(timed_by), best)
    cache = best["details"].get("cache") if isinstance(best["details"], dict) else None
    where = f"timed on {best['hardware']}, {best['dtype']}" + (f", {cache} cache" if cache else "")
    return float(best["speedup"]), f"{spread} ({best['kernel']}, {best['scope']}{elsewhere})", where


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


def interval_title(est: Any, n: Any) -> str:
    """What a value cell's interval means (a cell's hover text)."""
    if est is None or est.low is None:
        return "no per-item scores stored: no interval"
    over = f"over {n} items" if n else "over the task's items"
    if est.seeds > 1:
        return f"mean of {est.seeds} seeds ± their sd; 95% interval {over} and seeds (crossed bootstrap)"
    return f"95% bootstrap interval {over}"


ROW_ORDER = ["model", "pattern", "sparsity", "method", "id"]


def leaderboard_path(suite: str, version: str, subset: str = "") -> str:
    """The page of a suite version's leaderboard (of one of its task subsets)."""
    return f"leaderboards/{slug(f'{suite}-v{version}' + (f'-{subset}' if subset else ''))}.html"


def run_groups(frames: Frames, runs: pd.DataFrame) -> list[list[int]]:
    """The run ids of each row of :func:`run_table` (runs that differ only in seed or in what they time share one), in its order."""
    return run_rows(runs.sort_values(ROW_ORDER), frames.groups)


def run_table(frames: Frames, runs: pd.DataFrame, table_id: str, root: str, show_suite: bool = False,
              placeholders: Sequence[dict[str, Any]] = (), marks: bool = False, deltas: bool = False) -> Table:
    """One row per run, or per group of runs that differ only in seed or in what they time (a run
    that times kernels shares the row of its untimed twin): method, model, pattern, sparsity,
    every metric over one run per seed (value [95% interval], or mean ±sd over seeds
    [interval]), the best speedup measured for the group's pruning (:func:`best_speedup`), seeds, provenance (of the group's first run). ``marks``: mark the rows not
    distinguishable from the best of their model, pattern and sparsity; ``deltas``: Δ vs dense."""
    keys = frames.metric_keys(runs["id"].tolist())
    cols = [Column("method"), Column("model")]
    if show_suite:
        cols.append(Column("suite"))
    cols += [Column("pattern"), Column("sparsity", True, "target"), Column("achieved", True, "measured on the pruned weights")]
    cols += [Column(metric_label(k, frames.higher.get(k, False)), True, "value [95% interval]; with several seeds: mean ±sd [interval]")
             for k in keys]
    cols += [Column("speedup", True, "best measured end-to-end speedup vs dense [p10-p90 range: dense p10 / p90 to dense p90 / p10]"), Column("seed", True), Column("provenance")]
    ordered = runs.sort_values(ROW_ORDER)
    groups = run_groups(frames, runs)
    by_id = ordered.set_index("id", drop=False)
    best = best_marks(frames, groups, keys) if marks else {}
    rows = []
    for i, ids in enumerate(groups):
        r = next(by_id.loc[[ids[0]]].itertuples())
        baseline, stale = r.method in BASELINES, any(j in frames.stale for j in ids)
        speed, speed_text, timed_on = best_speedup(frames, ids)
        if speed_text == NOT_MEASURED and not r.sparsity:  # nothing pruned: the reference itself
            speed, speed_text, timed_on = 1.0, REFERENCE_SPEEDUP, REFERENCE_TITLE
        badge = " · ".join(b for b, on in (("baseline", baseline), ("stale", stale)) if on)
        cells = [Cell(r.method, r.method, f"{root}methods/{slug(r.method)}.html", badge, STALE if stale else ""),
                 Cell(r.model, r.model, f"{root}models/{slug(r.model)}.html")]
        if show_suite:
            cells.append(Cell(f"{r.suite} v{r.suite_version}", f"{r.suite} {r.suite_version}",
                              f"{root}{leaderboard_path(r.suite, r.suite_version)}"))
        cells += [Cell(r.pattern, r.pattern), Cell(fmt(r.sparsity, 3), sort_key(r.sparsity)),
                  Cell(fmt(r.achieved_sparsity), sort_key(r.achieved_sparsity))]
        for k in keys:
            est = frames.estimate(ids, k)
            mark = best.get((i, k), "")
            title = interval_title(est, frames.item_count(ids[0], k))
            if mark:
                title += f". {BEST_TITLE if mark == BEST else TIE_TITLE}"
            note = delta_text(delta_vs_dense(frames, ids, k)) if deltas else ""
            cells.append(Cell(est.text() if est else "—", sort_key(est.value if est else None), title=title, mark=mark, note=note))
        seeds = ",".join(str(s) for s in sorted(by_id.loc[frames.per_seed(ids), "seed"]))
        cells += [Cell(speed_text, sort_key(speed), title=timed_on), Cell(seeds, sort_key(int(r.seed))), Cell("details")]
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
