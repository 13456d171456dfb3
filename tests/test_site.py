"""The static site builder (no browser): pages, baselines, honesty of kernel rows, escaping, plots."""

from __future__ import annotations

import pytest

from sparsebench.cli import main
from sparsebench.errors import SparsebenchError
from sparsebench.pruning import methods
from sparsebench.site.build import build_site
from sparsebench.site.plots import Point, pareto, scatter
from sparsebench.site.tables import slug
from sparsebench.testing import HOSTILE_METHOD, HOSTILE_MODEL, write_synthetic_leaderboard


@pytest.fixture
def site(store, tmp_path):
    write_synthetic_leaderboard(store)
    return build_site(store, tmp_path / "site", progress=False)


def _read(site, path: str) -> str:
    return (site.out / path).read_text(encoding="utf-8")


def test_pages_exist(site, store):
    pages = set(site.pages)
    assert {"index.html", "kernels.html", "leaderboards/unit-v1.html", "leaderboards/unit-v2.html"} <= pages
    for name in set(store.runs()["method"]) | set(methods.list()):
        assert f"methods/{slug(name)}.html" in pages
    for name in set(store.runs()["model"]):
        assert f"models/{slug(name)}.html" in pages
    assert {f"runs/{i}.html" for i in store.runs()["id"]} <= pages
    for page in pages:
        assert (site.out / page).is_file()
    assert (site.out / "static" / "site.js").is_file() and (site.out / "static" / "style.css").is_file()


def test_leaderboard_shows_version_baselines_and_missing_baseline(site):
    html = _read(site, "leaderboards/unit-v1.html")
    assert "suite version 1" in html
    assert html.count('class="baseline"') >= 8  # dense + random rows of both models
    # tiny-a has 2:4 magnitude but no random 2:4 run: a flagged placeholder says how to run it
    assert "baseline · not run" in html and "sparsebench run -m random --model tiny-a --suite unit -p 2:4" in html
    assert "lambada-ppl v1 · perplexity ↓" in html
    v2 = _read(site, "leaderboards/unit-v2.html")
    assert "toy-acc v1 · accuracy ↑" in v2 and "lambada-ppl" not in v2  # versions never mix


def test_every_run_row_has_provenance(site, store):
    html = _read(site, "leaderboards/unit-v1.html")
    n_runs = int((store.runs()["suite_version"] == "1").sum())
    assert html.count("<details><summary>details</summary>") == n_runs
    assert html.count("git sha") == n_runs and html.count("full record") == n_runs


def test_kernels_page_is_honest(site):
    html = _read(site, "kernels.html")
    assert "synthetic-cpu (2 threads)" in html and "synthetic-gpu" in html
    assert "unsupported: bsr needs a block pattern" in html
    assert "ideal 1/density" in html
    assert html.count("<svg") == 3  # cpu: layer + prefill (end-to-end runs); gpu: layer only


def test_plots_embedded_inline(site):
    html = _read(site, "leaderboards/unit-v1.html")
    assert html.count("<svg") >= 4  # per model: quality vs sparsity and vs measured speedup
    assert "vs sparsity" in html and "vs measured prefill speedup" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html


def test_hostile_names_escaped_everywhere(site):
    for page in site.pages:
        html = _read(site, page)
        assert "<script>window" not in html, page
        assert "<img src=x" not in html, page
        assert html.count("<script") == 1, page  # only the site's own script tag
    html = _read(site, "leaderboards/unit-v1.html")
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=" in html


def test_refuses_to_overwrite_foreign_folder(store, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SparsebenchError, match="not a sparsebench site"):
        build_site(store, out, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"


def test_rebuild_replaces_previous_build_and_empty_db_builds(store, tmp_path):
    out = tmp_path / "site"
    first = build_site(store, out, progress=False)  # empty database
    assert "index.html" in first.pages and "kernels.html" in first.pages
    write_synthetic_leaderboard(store)
    second = build_site(store, out, progress=False)
    assert len(second.pages) > len(first.pages) and (out / "leaderboards" / "unit-v1.html").is_file()


def test_cli_site_build(store, tmp_path, capsys):
    write_synthetic_leaderboard(store)
    out = tmp_path / "public"
    with pytest.raises(SystemExit) as exit_:
        main(["site", "build", "--db", store.url, "--out", str(out), "--no-progress"])
    assert exit_.value.code == 0 and (out / "index.html").is_file()
    assert "built" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["site", "build", "--db", f"sqlite:///{tmp_path / 'missing.db'}", "--out", str(out)])
    assert exit_.value.code == 2


def test_pareto_front():
    pts = [Point(0.5, 30, "a", ""), Point(0.5, 25, "a", ""), Point(0.7, 40, "b", ""), Point(0.3, 28, "b", ""), Point(0.0, 20, "d", "")]
    front = pareto(pts, x_higher=True, y_higher=False)  # higher sparsity, lower perplexity
    assert [(p.x, p.y) for p in front] == [(0.0, 20), (0.5, 25), (0.7, 40)]
    front = pareto(pts, x_higher=True, y_higher=True)
    assert [(p.x, p.y) for p in front] == [(0.7, 40)]


def test_scatter_geometry_inside_the_frame():
    plot = scatter([Point(0.1 * i, 10.0 * 3**i, "m", "") for i in range(5)], title="t", x_label="x", y_label="ppl", y_higher=False)
    assert plot.y_label.endswith("(log scale)")
    for d in plot.dots:
        assert plot.plot_left <= d.cx <= plot.plot_right and plot.plot_top <= d.cy <= plot.plot_bottom
    for t in plot.x_ticks:
        assert plot.plot_left <= t.pos <= plot.plot_right
    assert all(d.pareto for d in plot.dots)  # each point trades more sparsity for a worse perplexity


def test_slug_unique_and_safe():
    assert slug("magnitude") == "magnitude"
    assert slug(HOSTILE_METHOD) != slug(HOSTILE_MODEL)
    assert all(c.isalnum() or c in "._-" for c in slug(HOSTILE_MODEL))


def test_every_missing_baseline_hint_runs_as_printed(store, tmp_path, tiny_model_dirs, capsys):
    """The leaderboard's "not run" hints are commands that `run --dry-run` accepts as printed,
    for a local model folder whose path needs quoting."""
    import html as html_lib
    import re
    import shlex
    import shutil

    from sparsebench.runner import run
    from sparsebench.spec import RunSpec

    model = tmp_path / "my models" / "tiny llama's copy"
    shutil.copytree(tiny_model_dirs["llama"], model)
    run(RunSpec(method="magnitude", model=str(model), suite="unit", sparsity=0.5), store, progress=False)
    site = build_site(store, tmp_path / "site", progress=False)
    page = _read(site, "leaderboards/unit-v1.html")
    hints = [html_lib.unescape(h) for h in re.findall(r'title="run it: ([^"]+)"', page)]
    assert len(hints) == 2  # dense, and random at the magnitude run's setting
    for hint in hints:
        args = shlex.split(hint)
        assert args[:2] == ["sparsebench", "run"] and str(model.resolve()) in args, hint
        with pytest.raises(SystemExit) as exit_:
            main([*args[1:], "--db", store.url, "--dry-run"])
        out, err = capsys.readouterr()
        assert exit_.value.code == 0, (hint, err)
        assert f"on local:{model.resolve()} " in out and "not stored yet" in out


def test_stale_runs_are_marked(store, tmp_path):
    from sparsebench.testing import synthetic_run

    store.write_run(synthetic_run("magnitude", "tiny-a", 30.0, method_source="0" * 64))
    store.write_run(synthetic_run("magnitude", "tiny-a", 35.0, sparsity=0.7))
    site = build_site(store, tmp_path / "site", progress=False)
    page = _read(site, "leaderboards/unit-v1.html")
    assert page.count('<tr class="stale">') == 1 and page.count("changed since: stale") == 1
    run_page = _read(site, "runs/1.html")
    assert "changed since: stale" in run_page and "changed since" not in _read(site, "runs/2.html")


def test_site_build_defaults_to_the_published_bundles(store, tmp_path, capsys, monkeypatch):
    """Without --db the site is built from results/ (every bundle, recursively) through a fresh
    index; nothing is written into the repository but the site."""
    from sparsebench.bundles import dumps, export_bundle
    from sparsebench.testing import synthetic_run

    for method, quality, sparsity in (("dense", 20.0, 0.0), ("magnitude", 31.0, 0.5), ("random", 90.0, 0.5)):
        store.write_run(synthetic_run(method, "tiny-a", quality, sparsity=sparsity))
    (tmp_path / "results" / "published").mkdir(parents=True)
    (tmp_path / "results" / "published" / "all.json").write_text(dumps(export_bundle(store, kernel_timings=True)))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["site", "build", "--out", "public", "--no-progress"])
    out = capsys.readouterr().out
    runs = len(store.runs())
    assert exit_.value.code == 0 and f"from {runs} runs" in out and "(1 bundle(s) under results/)" in out
    assert (tmp_path / "public" / "leaderboards" / "unit-v1.html").is_file()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["published"]  # no database left behind
    with pytest.raises(SystemExit) as exit_:
        main(["site", "build", "--bundles", "nowhere", "--out", "public"])
    assert exit_.value.code == 2 and "no bundle folder nowhere/" in capsys.readouterr().err


def test_speedup_plot_puts_both_families_on_one_chart(store):
    """SYNTHETIC records: one point per run at its best pruned-model speedup; a structured run's
    baseline row (the unpruned model, 1×) is not a point of that run."""
    import dataclasses

    from sparsebench.kernel_choice import UNPRUNED
    from sparsebench.site.pages import _speedup_plots
    from sparsebench.site.tables import Frames
    from sparsebench.testing import synthetic_run

    store.write_run(synthetic_run("dense", "tiny-a", 20.0, sparsity=0.0))
    store.write_run(synthetic_run("magnitude", "tiny-a", 30.0, sparsity=0.5, kernels=(("dense", "ok", 1.0, None), ("csr", "ok", 0.7, None))))
    shrunk = synthetic_run("shortgpt", "tiny-a", 26.0, pattern="depth", sparsity=0.2,
                           kernels=(("dense", "ok", 1.0, None), ("shrunk", "ok", 1.25, None)))
    rows = tuple(dataclasses.replace(t, details={**t.details, "model_state": UNPRUNED}) if t.kernel == "dense" else t
                 for t in shrunk.timings)
    store.write_run(dataclasses.replace(shrunk, measured=dataclasses.replace(shrunk.measured, timings=rows)))
    runs = store.runs()
    frames = Frames(runs, store.metrics(runs["id"].tolist()), store.timings())
    (key,) = frames.metric_keys(runs["id"].tolist())
    (plot,) = _speedup_plots(frames, frames.runs, lambda run_id: frames.value(run_id, key), "ppl", "perplexity", higher=False)
    labels = sorted(d.label for d in plot.dots)
    assert len(labels) == 3
    assert any(lab.startswith("shortgpt · depth") and "shrunk · 1.25×" in lab for lab in labels)
    assert any(lab.startswith("magnitude · unstructured") and "dense · 1.00×" in lab for lab in labels)  # its best kernel
    assert {item.text for item in plot.legend} >= {"structured: shrunk", "sparse: zeroed weights", "dense"}
    front = {d.label.split(" · ")[0] for d in plot.dots if d.pareto}
    assert front == {"shortgpt", "dense"}  # faster than dense and better than magnitude; dense is the best quality


def test_mean_zero_shot_accuracy_against_speedup(store):
    """SYNTHETIC records with two accuracy tasks: their mean is plotted against the measured speedup."""
    import dataclasses

    from sparsebench.record import MetricRecord
    from sparsebench.site.pages import _quality_plots
    from sparsebench.site.tables import Frames
    from sparsebench.testing import synthetic_run

    for method, pattern, accs, speedup in (("wanda", "2:4", (0.5, 0.7), 1.1), ("shortgpt", "depth", (0.4, 0.6), 1.3)):
        rec = synthetic_run(method, "tiny-a", accs[0], pattern=pattern, sparsity=0.5, task=("arc_easy", "1", "acc", True),
                            kernels=(("auto" if pattern == "2:4" else "shrunk", "ok", speedup, None),))
        piqa = MetricRecord("piqa", "1", "acc", accs[1], True, None, 100, {})
        store.write_run(dataclasses.replace(rec, measured=dataclasses.replace(rec.measured, metrics=(*rec.metrics, piqa))))
    runs = store.runs()
    frames = Frames(runs, store.metrics(runs["id"].tolist()), store.timings())
    (plot,) = [p for p in _quality_plots(frames, runs, "") if p.title.startswith("mean zero-shot accuracy (arc_easy, piqa)")]
    labels = sorted(d.label for d in plot.dots)
    assert labels[0].startswith("shortgpt · depth") and labels[0].endswith("1.30× · 0.5")
    assert labels[1].startswith("wanda · 2:4") and labels[1].endswith("1.10× · 0.6")
    assert all(d.pareto for d in plot.dots)  # one is faster, the other more accurate


def _row(html: str, method: str) -> str:
    """The leaderboard row (``<tr>...</tr>``) whose method cell links to ``method``."""
    start = html.index(f'methods/{slug(method)}.html">{method}</a>')
    return html[html.rindex("<tr", 0, start):html.index("</tr>", start)]


def test_leaderboard_shows_intervals_and_marks_the_rows_not_distinguishable_from_the_best(site, store):
    from sparsebench.confidence import bootstrap_interval
    from sparsebench.testing import toy_accuracy_items

    html = _read(site, "leaderboards/unit-v2.html")
    items = {m: it for m, _, it in toy_accuracy_items()}
    for method in ("sparsegpt", "wanda", "magnitude", "dense"):
        iv = bootstrap_interval(items[method])
        assert f"{items[method].value():.4g} [{iv.low:.3g}, {iv.high:.3g}]" in _row(html, method)
    assert '<span class="mark best">best</span>' in _row(html, "sparsegpt")
    assert '<span class="mark">≈ best</span>' in _row(html, "wanda")  # McNemar p = 0.45 against sparsegpt
    assert "mark" not in _row(html, "magnitude")  # p < 1e-9
    assert "mark" not in _row(html, "dense")  # alone at its sparsity
    assert "not distinguishable from the best" in _row(html, "wanda")


def test_method_and_run_pages_show_delta_vs_dense(site, store):
    from sparsebench.confidence import compare
    from sparsebench.testing import toy_accuracy_items

    items = {m: it for m, _, it in toy_accuracy_items()}
    c = compare([items["dense"]], [items["wanda"]])
    text = f"Δ vs dense {c.delta:+.3g} [{c.interval.low:+.3g}, {c.interval.high:+.3g}]"
    assert text in _read(site, "methods/wanda.html")
    runs = store.runs()
    run_id = int(runs.loc[runs["method"] == "wanda", "id"].iloc[0])
    page = _read(site, f"runs/{run_id}.html")
    assert f"{c.delta:+.4g} [{c.interval.low:+.4g}, {c.interval.high:+.4g}]" in page and "McNemar exact" in page


def test_runs_that_differ_only_in_seed_share_a_leaderboard_row(store, tmp_path):
    import numpy as np

    from sparsebench.items import ItemScores
    from sparsebench.results import estimate
    from sparsebench.testing import synthetic_run

    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        store.write_run(synthetic_run("wanda", "tiny-a", 0, seed=seed, task=("toy-acc", "1", "accuracy", True),
                                      items=ItemScores.of(range(50), rng.random(50) < 0.6)))
    site = build_site(store, tmp_path / "site", progress=False)
    html = _read(site, "leaderboards/unit-v1-toy-acc.html")  # not the unit suite's own tasks: a board of its own
    assert html.count("<details><summary>details</summary>") == 1
    est = estimate(store.metrics())
    assert est.seeds == 3 and est.text() in html and "0,1,2" in html and "±" in est.text()


def test_runs_of_a_task_subset_get_their_own_leaderboard_beside_the_suites(store, tmp_path):
    from sparsebench.suites import suites
    from sparsebench.testing import synthetic_run

    unit = suites.get("unit")
    store.write_run(synthetic_run("magnitude", "tiny-a", 30.0, task=("lambada-ppl", "1", "perplexity", False)))
    store.write_run(synthetic_run("wanda", "tiny-a", 0.7, task=("piqa", "1", "acc", True)))
    assert list(unit.tasks) != ["piqa"]
    site = build_site(store, tmp_path / "site", progress=False)
    own, subset = _read(site, "leaderboards/unit-v1.html"), _read(site, "leaderboards/unit-v1-piqa.html")
    assert ">wanda<" not in own and ">wanda<" in subset and "only piqa" in subset
    assert "only piqa" in _read(site, "index.html")


def test_a_timed_run_shares_its_untimed_twins_row_and_each_seed_counts_once(store, tmp_path):
    """SYNTHETIC records: seeds 0 and 1 untimed and a kernel-timing run of seed 0 with the same
    items make one row: two seeds (not three), the timed run's speedup; another sparsity does not join."""
    import numpy as np

    from sparsebench.items import ItemScores
    from sparsebench.results import estimate
    from sparsebench.site.tables import Frames, run_groups, run_table
    from sparsebench.testing import synthetic_run

    rng = np.random.default_rng(1)
    hits = {seed: rng.random(60) < 0.6 for seed in (0, 1)}
    task = ("toy-acc", "1", "accuracy", True)
    for seed in (0, 1):
        store.write_run(synthetic_run("wanda", "tiny-a", 0, seed=seed, task=task, items=ItemScores.of(range(60), hits[seed])))
    store.write_run(synthetic_run("wanda", "tiny-a", 0, seed=0, task=task, items=ItemScores.of(range(60), hits[0]),
                                  kernels=(("dense", "ok", 1.0, None), ("bitmap", "ok", 1.37, None))))
    store.write_run(synthetic_run("wanda", "tiny-a", 0, seed=0, sparsity=0.7, task=task, items=ItemScores.of(range(60), hits[1])))
    runs = store.runs()
    frames = Frames(runs, store.metrics(runs["id"].tolist()), store.timings())
    groups = run_groups(frames, frames.runs)
    assert sorted(len(g) for g in groups) == [1, 3]
    (row,) = [g for g in groups if len(g) == 3]
    assert len(frames.per_seed(row)) == 2 and len(frames.item_lists(row, ("toy-acc", "1", "accuracy"))) == 2
    untimed = store.metrics(sorted(row)[:2])
    assert frames.estimate(row, ("toy-acc", "1", "accuracy")) == estimate(untimed)  # seed 0 once, not twice
    table = run_table(frames, frames.runs, "t", "")
    texts = [[c.text for c in r.cells] for r in table.rows]
    (cells,) = [t for t in texts if "0,1" in t]
    assert "1.37× [1.24, 1.51] (bitmap, prefill)" in cells and estimate(untimed).text() in cells
    from sparsebench.results import compact

    shown = compact(runs, store.metrics()).set_index("id")  # `sparsebench results` shows the same row
    assert list(shown.index) == ["1,2,3", "4"] and shown.loc["1,2,3", "seeds"] == 2
    assert shown.loc["1,2,3", "toy-acc"] == estimate(untimed).text()


def test_a_row_scored_on_other_tasks_shows_the_speedup_timed_for_its_pruning(store):
    """SYNTHETIC records: wanda 50% timed while scoring toy-acc (run 1); the same pruning scored on
    toy-ppl only (run 2, `--task`) shows run 1's speedup and names its spec hash; wanda 70% on toy-ppl, whose
    pruning nobody timed, says "not measured"."""
    from sparsebench.site.tables import Frames, run_table
    from sparsebench.testing import synthetic_run

    acc, ppl = ("toy-acc", "1", "accuracy", True), ("toy-ppl", "1", "perplexity", False)
    store.write_run(synthetic_run("wanda", "tiny-a", 0.6, task=acc, kernels=(("dense", "ok", 1.0, None), ("bitmap", "ok", 1.37, None))))
    store.write_run(synthetic_run("wanda", "tiny-a", 30.0, task=ppl))
    store.write_run(synthetic_run("wanda", "tiny-a", 90.0, task=ppl, sparsity=0.7))
    frames = Frames(store.runs(), store.metrics(), store.timings())
    assert frames.same_pruning([2]) == [1, 2] and frames.same_pruning([3]) == [3]
    rows = run_table(frames, frames.runs, "t", "").rows
    speed = {r.prov.run_href.rsplit("/", 1)[1]: r.cells[-3].text for r in rows}
    where = {r.prov.run_href.rsplit("/", 1)[1]: r.cells[-3].title for r in rows}  # rows of a board may come from several machines
    assert where == {"1.html": "timed on synthetic-cpu (2 threads), float32", "2.html": where["1.html"], "3.html": ""}
    timed = frames.spec_hash(1)[:8]
    assert speed == {"1.html": "1.37× [1.24, 1.51] (bitmap, prefill)", "2.html": f"1.37× [1.24, 1.51] (bitmap, prefill; timed by {timed})", "3.html": "not measured"}


def test_the_dense_row_is_the_speedup_reference_not_an_unmeasured_pruning(store):
    """SYNTHETIC records: dense (nothing pruned) is what every speedup is measured against, so its
    row says "1.00× (reference)"; a pruned row nobody timed still says "not measured"."""
    from sparsebench.site.tables import Frames, run_table
    from sparsebench.testing import synthetic_run

    acc = ("toy-acc", "1", "accuracy", True)
    store.write_run(synthetic_run("dense", "tiny-a", 0.7, task=acc, sparsity=0.0))
    store.write_run(synthetic_run("wanda", "tiny-a", 0.6, task=acc))
    frames = Frames(store.runs(), store.metrics(), store.timings())
    speed = {r.cells[0].text: r.cells[-3] for r in run_table(frames, frames.runs, "t", "").rows}
    assert speed["dense"].text == "1.00× (reference)" and "measured against" in speed["dense"].title
    assert speed["wanda"].text == "not measured" and speed["wanda"].title == ""
