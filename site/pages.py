"""Page contexts: one function per kind of page, DataFrames in, plain data for the templates out."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd

from sparsebench.spec import SuiteIdentity

from .plots import Plot, Point, scatter
from .protocols import Protocol, identities
from .significance import ALPHA, delta_vs_dense
from .tables import (
    BASELINES, Cell, Column, Frames, Provenance, Row, Table, fmt, interval_title, metric_label, missing_baselines, provenance,
    leaderboard_path, pruned_model_rows, run_table, slug, sort_key,
)

LEADERBOARD_CAPTION = (f"Each value: the metric [its 95% bootstrap interval over the task's items]; runs that differ only in seed "
                       f"share a row: mean ±sd over seeds [interval over items and seeds]; a run that timed kernels shares its untimed "
                       f"twin's row and gives that row its speedup; a row of runs scored on other tasks (--task) shows the speedup timed for "
                       f"the same pruning by the run whose spec hash the cell names. Within each model, pattern and sparsity, "
                       f"'best' marks the best value and '≈ best' the rows a paired test against it cannot tell apart (α = {ALPHA:g}).")


@dataclasses.dataclass(frozen=True)
class Page:
    path: str  # relative to the site root
    template: str
    context: dict[str, Any]

    @property
    def root(self) -> str:
        return "../" * self.path.count("/")


def registered(registry: Any, name: str) -> Any | None:
    try:
        return registry.get(name) if name in registry else None
    except Exception:  # a name from another installation (e.g. an imported bundle's plugin method)
        return None


def _quality_plots(frames: Frames, runs: pd.DataFrame, title_prefix: str) -> list[Plot]:
    """Quality vs sparsity, and quality vs measured speedup per hardware and scope, per metric."""
    plots = []
    for key in frames.metric_keys(runs["id"].tolist()):
        higher = frames.higher.get(key, False)
        label = metric_label(key, higher)
        # x is the target sparsity: verification holds the achieved one within 0.005 of it (a
        # structured run: within its stated tolerance, of the targeted parameters), and comparing
        # targets keeps rounding noise out of the Pareto front
        pts = [Point(float(r.sparsity), v, r.method,
                     f"{r.method} · {r.pattern} · sparsity {r.sparsity:g} (achieved {fmt(r.achieved_sparsity)}) · {key[2]} {v:.4g}")
               for r in runs.itertuples() if (v := frames.value(int(r.id), key)) is not None]
        if pts:
            plots.append(scatter(pts, title=f"{title_prefix}{label} vs sparsity", x_label="target sparsity (verified)", y_label=key[2],
                                 y_higher=higher, caption="Ringed points form the Pareto front (higher sparsity, better quality)."))
        plots.extend(_speedup_plots(frames, runs, lambda run_id, key=key: frames.value(run_id, key), f"{title_prefix}{label}",
                                    key[2], higher))
    plots.extend(central_plots(frames, runs, title_prefix))
    return plots


def central_plots(frames: Frames, runs: pd.DataFrame, title_prefix: str = "") -> list[Plot]:
    """The leaderboard's central plots: mean zero-shot accuracy against measured speedup, per
    model, hardware and phase (none when the runs have fewer than two accuracy tasks)."""
    accuracy = [k for k in frames.metric_keys(runs["id"].tolist()) if k[2] == "acc"]
    if len(accuracy) < 2:
        return []

    def mean_acc(run_id: int) -> float | None:
        values = [frames.value(run_id, k) for k in accuracy]
        return None if None in values else sum(values) / len(values)

    tasks = ", ".join(k[0] for k in accuracy)
    return _speedup_plots(frames, runs, mean_acc, f"{title_prefix}mean zero-shot accuracy ({tasks}) ↑", "mean acc", True)


def _family(pattern: str) -> str:
    from sparsebench.patterns import STRUCTURED

    return "structured: shrunk" if pattern in {c.unit for c in STRUCTURED} else "sparse: zeroed weights"


def _speedup_plots(frames: Frames, runs: pd.DataFrame, quality: Callable[[int], float | None], title: str, y_label: str,
                   higher: bool) -> list[Plot]:
    """The central question, per model, hardware and phase: quality (``quality(run_id)``) against the
    run's best measured speedup over the dense model, structured and sparse runs on one chart, the
    Pareto front ringed."""
    t = pruned_model_rows(frames.timings)
    if t.empty:
        return []
    t = t[t["run_id"].isin(runs["id"]) & (t["status"] == "ok")]
    by_id = runs.set_index("id")
    plots = []
    for (model, hardware, scope), g in t.assign(model=t["run_id"].map(by_id["model"])).groupby(["model", "hardware", "scope"], sort=True):
        best = g.loc[g.groupby("run_id")["speedup"].idxmax()]
        pts = []
        for s in best.itertuples():
            r = by_id.loc[s.run_id]
            if (v := quality(int(s.run_id))) is not None:
                pts.append(Point(float(s.speedup), v, _family(r["pattern"]),
                                 f"{r['method']} · {r['pattern']} · {r['sparsity']:g} · {s.kernel} · {s.speedup:.2f}× · {v:.4g}"))
        if not pts:
            continue
        dense = runs[(runs["method"] == "dense") & (runs["model"] == model)]
        pts += [Point(1.0, v, "dense", f"dense · reference (1×) · {v:.4g}") for r in dense.itertuples()
                if (v := quality(int(r.id))) is not None]
        plots.append(dataclasses.replace(scatter(
            pts, title=f"{title} vs measured {scope} speedup — {model} on {hardware}", x_label=f"measured {scope} speedup vs dense (×)",
            y_label=y_label, y_higher=higher, x_include=(1.0,),
            caption="One point per run: its best measured speedup (the fastest kernel for sparse runs, the smaller dense model "
                    "for structured ones) against the dense model, timed in the same process. Ringed points form the Pareto "
                    "front: no other run is both faster and better. Unsupported or failed kernels are not plotted (see the table).",
        ), subject=hardware))
    return plots


def leaderboards(frames: Frames, protocols: Mapping[SuiteIdentity, Protocol] | None = None) -> Iterator[Page]:
    """One page per suite version (and task subset), with its protocol where ``protocols`` has it."""
    from sparsebench.suites import suites

    if frames.runs.empty:
        return
    boards = frames.runs.assign(subset=frames.subsets)
    for (suite, version, subset), runs in boards.groupby(["suite", "suite_version", "subset"], sort=True):
        entry = registered(suites, suite)
        table = dataclasses.replace(run_table(frames, runs, "leaderboard", "../", placeholders=missing_baselines(runs, suite, version),
                                              marks=True), caption=LEADERBOARD_CAPTION)
        only = f" (only {subset.replace('+', ', ')}: runs with --task)" if subset else ""
        idents = identities(runs)
        protocol = (protocols or {}).get(next(iter(idents))) if len(idents) == 1 else None
        yield Page(leaderboard_path(suite, version, subset), "leaderboard.html", dict(
            title=f"{suite} v{version} leaderboard{only}", suite=suite, version=version, subset=subset,
            description=protocol.description if protocol else "",
            calibration=protocol.calibration if protocol else "",
            protocol=protocol, settings=", ".join(sorted(i.settings[:12] for i in idents)),
            registered_version=entry.version if entry else "not registered here",
            results=table, plots=[p for model, g in runs.groupby("model", sort=True) for p in _quality_plots(frames, g, f"{model}: ")],
            n_runs=len(runs), baselines=", ".join(BASELINES),
        ))


def _method_info(name: str) -> dict[str, Any]:
    from sparsebench.pruning import methods

    cls = registered(methods, name)
    if cls is None:
        return dict(registered=False, summary="", paper="", paper_href="", taxonomy=(), params=())
    m = cls.meta
    paper_href = f"https://arxiv.org/abs/{m.paper.removeprefix('arXiv:')}" if m.paper and m.paper.startswith("arXiv:") else ""
    taxonomy = (("one-shot (no retraining)", m.one_shot), ("updates surviving weights", m.updates_weights),
                ("needs calibration data", m.needs_calibration), ("needs gradients", m.needs_gradients), ("prunes", m.prunes))
    defaults = cls.Params()
    params = tuple((f.name, getattr(f.type, "__name__", str(f.type)), repr(getattr(defaults, f.name))) for f in dataclasses.fields(cls.Params))
    return dict(
        registered=True, summary=m.summary, doc=(cls.__doc__ or "").strip(), paper=f"{m.citation} {m.paper or ''}".strip(),
        paper_href=paper_href, taxonomy=tuple((k, "yes" if v else "no") for k, v in taxonomy),
        patterns=", ".join(t.__name__ for t in m.patterns), mask_group=str(m.group), params=params,
    )


def method_pages(frames: Frames) -> Iterator[Page]:
    from sparsebench.pruning import methods

    stored = set(frames.runs["method"]) if not frames.runs.empty else set()
    names = sorted(stored | set(methods.list()))
    for name in names:
        runs = frames.runs[frames.runs["method"] == name] if not frames.runs.empty else frames.runs
        used = sorted({json.dumps(p, sort_keys=True) for p in runs["method_params"]}) if not runs.empty else []
        yield Page(f"methods/{slug(name)}.html", "method.html", dict(
            title=f"method {name}", name=name, baseline=name in BASELINES, info=_method_info(name), params_used=used,
            results=run_table(frames, runs, "runs", "../", show_suite=True, deltas=True) if not runs.empty else None,
        ))


def model_pages(frames: Frames) -> Iterator[Page]:
    from sparsebench.models import models

    if frames.runs.empty:
        return
    for name, runs in frames.runs.groupby("model", sort=True):
        entry = registered(models, name)
        info = dict(kind=entry.kind, family=entry.family, params=entry.params, description=entry.description,
                    sources=" → ".join(s.describe() for s in entry.asset.sources)) if entry else None
        plots = [p for (suite, version), g in runs.groupby(["suite", "suite_version"], sort=True)
                 for p in _quality_plots(frames, g, f"{suite} v{version}: ")]
        yield Page(f"models/{slug(name)}.html", "model.html", dict(
            title=f"model {name}", name=name, info=info, plots=plots,
            revisions=", ".join(sorted(set(runs["model_revision"]))), results=run_table(frames, runs, "runs", "../", show_suite=True),
        ))


def _timing_table(t: pd.DataFrame, table_id: str, root: str) -> Table:
    cols = (Column("kernel"), Column("scope"), Column("pattern"), Column("sparsity", True), Column("dtype"), Column("shape"),
            Column("cache", False, "cold: the last-level cache evicted before every timed call; hot: not"),
            Column("status"), Column("median (ms)", True), Column("dense (ms)", True), Column("speedup", True, "measured, vs dense"),
            Column("ideal", True, "1 / density: what skipping every zero would give"), Column("of ideal", True),
            Column("bytes bound", True, "dense bytes / bytes of the kernel's packed weight: the limit at one token"),
            Column("of bound", True), Column("provenance"))
    rows = []
    for s in t.itertuples():
        ok = s.status == "ok"
        frac = s.speedup / s.ideal_speedup if ok and pd.notna(s.ideal_speedup) and s.ideal_speedup else None
        details = s.details if isinstance(s.details, dict) else {}
        cache, bound = details.get("cache", "—"), details.get("bytes_bound")
        of_bound = s.speedup / bound if ok and bound else None
        shape = " × ".join(f"{k} {v}" for k, v in (s.shape or {}).items())
        status = "ok" if ok else f"{s.status}: {s.reason or 'no reason recorded'}"
        cells = (Cell(s.kernel, s.kernel), Cell(s.scope, s.scope), Cell(s.pattern, s.pattern), Cell(fmt(s.sparsity, 3), sort_key(s.sparsity)),
                 Cell(s.dtype, s.dtype), Cell(shape, shape), Cell(cache, cache), Cell(status, s.status),
                 Cell(fmt(s.median_s * 1e3) if ok else "—", sort_key(s.median_s)),
                 Cell(fmt(s.dense_median_s * 1e3) if ok else "—", sort_key(s.dense_median_s)),
                 Cell(f"{s.speedup:.2f}×" if ok else s.status, sort_key(s.speedup if ok else None)),
                 Cell(f"{s.ideal_speedup:.2f}×" if pd.notna(s.ideal_speedup) else "—", sort_key(s.ideal_speedup)),
                 Cell(f"{frac:.0%}" if frac is not None else "—", sort_key(frac)),
                 Cell(f"{bound:.2f}×" if bound else "—", sort_key(bound)),
                 Cell(f"{of_bound:.0%}" if of_bound is not None else "—", sort_key(of_bound)), Cell("details"))
        items = (("measured", str(s.created_at)[:19]), ("hardware", f"{s.hardware} ({s.device})"), ("threads", fmt(s.threads)),
                 ("iterations", fmt(s.iterations)), ("p10 / p90 (ms)", f"{fmt(s.p10_s * 1e3 if pd.notna(s.p10_s) else None)} / "
                                                                     f"{fmt(s.p90_s * 1e3 if pd.notna(s.p90_s) else None)}"),
                 ("max abs error vs dense", fmt(s.max_abs_error)), ("details", json.dumps(s.details, sort_keys=True)[:300]))
        href = f"{root}runs/{int(s.run_id)}.html" if pd.notna(s.run_id) else ""
        rows.append(Row(cells, "" if ok else "unsupported", Provenance(href, items)))
    return Table(table_id, cols, tuple(rows))


def kernels_page(frames: Frames) -> Page:
    sections = []
    t = frames.timings
    for i, (hardware, g) in enumerate(t.groupby("hardware", sort=True) if not t.empty else []):
        ok = g[g["status"] == "ok"]
        plots = []
        for scope, gs in ok.groupby("scope", sort=True):
            pts = [Point(float(s.sparsity), float(s.speedup), f"{s.kernel} · {s.pattern}", f"{s.kernel} · {s.pattern} · {s.sparsity:g} · {s.speedup:.2f}×")
                   for s in gs.itertuples()]
            xs = sorted({p.x for p in pts})
            ideal = [(x, 1 / (1 - x)) for x in xs if x < 0.95]
            lines = [("dense (1×)", [(min(xs), 1.0), (max(xs), 1.0)])] + ([("ideal 1/density", ideal)] if len(ideal) > 1 else [])
            plots.append(scatter(pts, title=f"{scope} speedup vs sparsity — {hardware}", x_label="sparsity", y_label="speedup vs dense (×)",
                                 lines=lines, y_log=False, front=False, caption="Measured speedups (dots) against dense (1×) and the ideal 1/density."))
        unsupported = int((g["status"] != "ok").sum())
        sections.append(dict(hardware=hardware, plots=plots, unsupported=unsupported, n=len(g),
                             table=_timing_table(g.sort_values(["kernel", "scope", "pattern", "sparsity"]), f"kernels-{i}", "")))
    return Page("kernels.html", "kernels.html", dict(title="kernels", sections=sections))


def _metrics_table(frames: Frames, run_id: int) -> Table:
    """The run's metrics with their intervals and Δ vs dense (same model, revision and suite identity)."""
    m = frames.metrics[frames.metrics["run_id"] == run_id]
    rows = []
    for x in m.itertuples():
        key = (x.task, x.task_version, x.metric)
        ci = f"[{fmt(x.ci_low)}, {fmt(x.ci_high)}]" if pd.notna(x.ci_low) else "—"
        d = delta_vs_dense(frames, [run_id], key)
        rows.append(Row((Cell(x.task, x.task), Cell(x.task_version), Cell(f"{x.metric} {'↑' if x.higher_is_better else '↓'}"),
                         Cell(fmt(x.value, 6), sort_key(x.value)), Cell(ci, sort_key(x.ci_low if pd.notna(x.ci_low) else None),
                                                                        title=interval_title(frames.estimate([run_id], key), frames.item_count(run_id, key))),
                         Cell(fmt(x.stderr), sort_key(x.stderr)), Cell(fmt(x.n), sort_key(x.n)),
                         Cell(f"{d.delta:+.4g} [{d.interval.low:+.4g}, {d.interval.high:+.4g}]" if d else "—", sort_key(d.delta if d else None)),
                         Cell(f"{d.p_value:.3g} ({d.test})" if d else "—", sort_key(d.p_value if d else None)),
                         Cell(json.dumps(x.details, sort_keys=True)[:300]))))
    return Table("metrics", (Column("task"), Column("version"), Column("metric"), Column("value", True),
                             Column("95% interval", True, "bootstrap over the task's items (1000 resamples, seed 0)"),
                             Column("stderr", True), Column("n", True),
                             Column("Δ vs dense", True, "this run minus the dense runs of its model and suite, 95% paired-bootstrap interval"),
                             Column("p vs dense", True, "McNemar's exact test for accuracies, the paired bootstrap otherwise"),
                             Column("details")), tuple(rows))


def run_pages(frames: Frames) -> Iterator[Page]:
    for r, subset in zip(frames.runs.itertuples(), frames.subsets):
        metrics = _metrics_table(frames, int(r.id))
        t = frames.run_timings(int(r.id))
        yield Page(f"runs/{int(r.id)}.html", "run.html", dict(
            title=f"run {int(r.id)}: {r.method} on {r.model}", run=r, prov=provenance(r, "../", int(r.id) in frames.stale), metrics=metrics,
            timings=_timing_table(t, "timings", "../") if not t.empty else None,
            leaderboard=f"../{leaderboard_path(r.suite, r.suite_version, subset)}",
            method_href=f"../methods/{slug(r.method)}.html", model_href=f"../models/{slug(r.model)}.html",
            params=json.dumps(r.method_params, indent=2, sort_keys=True), spec=json.dumps(r.spec, indent=2, sort_keys=True),
            provenance_json=json.dumps(r.provenance, indent=2, sort_keys=True, default=str),
        ))


def index_page(frames: Frames, boards: list[Page], methods: list[Page], models: list[Page]) -> Page:
    def count(col: str, value: Any) -> int:
        return int((frames.runs[col] == value).sum()) if not frames.runs.empty else 0

    board_rows = tuple(Row((Cell(p.context["suite"], p.context["suite"], p.path,
                                 f"only {p.context['subset'].replace('+', ', ')}" if p.context["subset"] else ""), Cell(p.context["version"]),
                            Cell(str(p.context["n_runs"]), sort_key(p.context["n_runs"])),
                            Cell(p.context["description"] or "no protocol file published for these settings")))
                       for p in boards)
    method_rows = tuple(Row((Cell(p.context["name"], p.context["name"], p.path, "baseline" if p.context["baseline"] else ""),
                             Cell(p.context["info"]["summary"] or "not registered in this installation"),
                             Cell(p.context["info"]["paper"] or "—"), Cell(str(count("method", p.context["name"])),
                                                                           sort_key(count("method", p.context["name"])))))
                        for p in methods)
    model_rows = tuple(Row((Cell(p.context["name"], p.context["name"], p.path), Cell(str(count("model", p.context["name"])),
                                                                                    sort_key(count("model", p.context["name"])))))
                       for p in models)
    return Page("index.html", "index.html", dict(
        title="leaderboards",
        boards=Table("boards", (Column("suite"), Column("version"), Column("runs", True), Column("protocol", wrap=True)), board_rows),
        methods=Table("methods", (Column("method"), Column("summary"), Column("paper"), Column("runs", True)), method_rows),
        models=Table("models", (Column("model"), Column("runs", True)), model_rows),
        n_runs=len(frames.runs), n_timings=len(frames.timings),
    ))
