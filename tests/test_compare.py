"""``sparsebench compare`` and its Python API: Δ, interval and p-value on the same items, and the
one-line errors when the runs did not score the same items."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from sparsebench.cli import main
from sparsebench.comparison import COLUMNS, compare_runs
from sparsebench.confidence import BOOTSTRAP, MCNEMAR, ComparisonError
from sparsebench.items import ItemScores
from sparsebench.testing import synthetic_run

ACC = ("arc_easy", "1", "acc", True)
DOCS = [str(i) for i in range(40)]


def _acc(bits, ids=DOCS) -> ItemScores:
    return ItemScores.of(ids, [float(b) for b in bits])


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def runs(store):
    """Magnitude (24/40 right) and wanda (30/40 right: 8 documents only wanda gets, 2 only magnitude)."""
    mag = [1] * 24 + [0] * 16
    wanda = [1] * 22 + [0, 0] + [1] * 8 + [0] * 8
    ids = {}
    ids["magnitude"] = store.write_run(synthetic_run("magnitude", "tiny", 0, task=ACC, items=_acc(mag)))
    ids["wanda"] = store.write_run(synthetic_run("wanda", "tiny", 0, task=ACC, items=_acc(wanda)))
    return store, ids, mag, wanda


def test_python_api_gives_delta_interval_and_mcnemar(runs):
    store, ids, _, _ = runs
    df = compare_runs(store, ids["magnitude"], ids["wanda"])
    assert list(df.columns) == COLUMNS and len(df) == 1
    row = df.iloc[0]
    assert row["a"] == 0.6 and row["b"] == 0.75 and row["delta"] == pytest.approx(0.15)
    assert row["test"] == MCNEMAR and row["p_value"] == pytest.approx(binomtest(8, 10, 0.5).pvalue)
    assert row["ci_low"] < 0.15 < row["ci_high"] and row["items"] == 40 and (row["resamples"], row["seed"]) == (1000, 0)


def test_a_run_compared_with_itself_by_spec_hash_prefix(runs, capsys):
    store, ids, _, _ = runs
    prefix = store.runs(id=ids["wanda"])["spec_hash"].iloc[0][:8]
    df = compare_runs(store, prefix, str(ids["wanda"]))
    assert df.iloc[0]["delta"] == 0.0 and df.iloc[0]["p_value"] == 1.0
    code, out, err = _cli(capsys, "compare", str(ids["magnitude"]), str(ids["wanda"]), "--db", store.url, "--format", "markdown")
    assert code == 0 and "arc_easy/acc ↑" in out and "+0.15" in out and MCNEMAR in out
    assert "Δ = B − A" in err


def test_help_says_which_test_is_used_when(capsys):
    code, out, _ = _cli(capsys, "compare", "--help")
    assert code == 0 and "McNemar's exact test" in out and "paired bootstrap" in out and "accuracies" in out


def _err(capsys, store, a, b, *extra):
    code, out, err = _cli(capsys, "compare", str(a), str(b), "--db", store.url, *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    return err


def test_runs_on_other_items_are_refused_with_the_reason(runs, capsys):
    store, ids, mag, _ = runs
    other_suite = store.write_run(synthetic_run("other-suite", "tiny", 0, task=ACC, suite="quick", items=_acc(mag)))
    other_model = store.write_run(synthetic_run("other-model", "small", 0, task=ACC, items=_acc(mag)))
    other_version = store.write_run(synthetic_run("other-version", "tiny", 0, task=("arc_easy", "2", "acc", True), items=_acc(mag)))
    other_docs = store.write_run(synthetic_run("other-docs", "tiny", 0, task=ACC, items=_acc(mag, [f"d{i}" for i in range(40)])))
    m = ids["magnitude"]
    assert "the suite identity differs: unit v1" in _err(capsys, store, m, other_suite)
    assert "the model differs: tiny vs small" in _err(capsys, store, m, other_model)
    assert "task arc_easy has version 1 in A but 2 in B" in _err(capsys, store, m, other_version)
    assert "arc_easy/acc: the runs scored different items" in _err(capsys, store, m, other_docs)
    assert "no completed run '999'" in _err(capsys, store, m, 999)
    assert "no metric 'perplexity'" in _err(capsys, store, m, ids["wanda"], "--metric", "perplexity")


def test_perplexity_uses_the_paired_bootstrap(store):
    a = store.write_run(synthetic_run("magnitude", "tiny", 0, items=ItemScores.of(range(4), [60.0, 70, 65, 80], [20] * 4, "perplexity")))
    b = store.write_run(synthetic_run("wanda", "tiny", 0, items=ItemScores.of(range(4), [50.0, 60, 55, 70], [20] * 4, "perplexity")))
    row = compare_runs(store, a, b, metric="lambada-ppl/perplexity").iloc[0]
    assert row["test"] == BOOTSTRAP and row["delta"] == pytest.approx(np.exp(235 / 80) - np.exp(275 / 80))
    assert row["ci_high"] < 0 and row["p_value"] == pytest.approx(1 / 1001)  # lower on every window


def test_all_seeds_compares_seed_groups(store):
    rng = np.random.default_rng(0)
    for seed in range(3):
        store.write_run(synthetic_run("magnitude", "tiny", 0, task=ACC, seed=seed, items=_acc(rng.random(40) < 0.5)))
        store.write_run(synthetic_run("wanda", "tiny", 0, task=ACC, seed=seed, items=_acc(rng.random(40) < 0.7)))
    runs = store.runs()
    first = {m: int(runs.loc[runs["method"] == m, "id"].iloc[0]) for m in ("magnitude", "wanda")}
    df = compare_runs(store, first["magnitude"], first["wanda"], all_seeds=True)
    row = df.iloc[0]
    assert (row["seeds_a"], row["seeds_b"], row["test"]) == (3, 3, BOOTSTRAP)
    m = store.metrics()
    means = {meth: np.mean([v for v, r in zip(m["value"], m["run_id"]) if r in set(runs.loc[runs["method"] == meth, "id"])])
             for meth in ("magnitude", "wanda")}
    assert row["delta"] == pytest.approx(means["wanda"] - means["magnitude"])
    assert df.attrs["runs_a"] == sorted(runs.loc[runs["method"] == "magnitude", "id"].tolist())
    as_shown = ",".join(str(i) for i in df.attrs["runs_a"])  # a row of `results`
    again = compare_runs(store, as_shown, ",".join(str(i) for i in df.attrs["runs_b"]))
    assert again.iloc[0]["delta"] == row["delta"] and again.iloc[0]["p_value"] == row["p_value"]
    with pytest.raises(ComparisonError, match="differ in more than their seed"):
        compare_runs(store, f"{first['magnitude']},{first['wanda']}", first["wanda"])


def test_a_timed_run_and_its_untimed_twin_count_as_one_seed(store):
    """A row of `results` that holds a kernel-timing run and its untimed twin (same items) is
    compared on one run per seed; the twins are not a seed each."""
    rng = np.random.default_rng(2)
    hits = [rng.random(40) < 0.5 for _ in range(2)]
    for seed in (0, 1):
        store.write_run(synthetic_run("magnitude", "tiny", 0, task=ACC, seed=seed, items=_acc(hits[seed])))
    store.write_run(synthetic_run("magnitude", "tiny", 0, task=ACC, seed=0, items=_acc(hits[0]),
                                  kernels=(("dense", "ok", 1.0, None), ("csr", "ok", 1.2, None))))
    wanda = store.write_run(synthetic_run("wanda", "tiny", 0, task=ACC, items=_acc(rng.random(40) < 0.7)))
    twins = compare_runs(store, "1,3", wanda)
    assert twins.attrs["runs_a"] == [1] and twins.iloc[0]["seeds_a"] == 1
    assert twins.iloc[0]["delta"] == compare_runs(store, 1, wanda).iloc[0]["delta"]
    every = compare_runs(store, 3, wanda, all_seeds=True)
    assert every.attrs["runs_a"] == [1, 2] and every.iloc[0]["seeds_a"] == 2
    with pytest.raises(ComparisonError, match="differ in more than their seed"):
        compare_runs(store, f"1,{wanda}", wanda)


def test_a_real_run_compared_with_itself(tiny_model_dirs, store, capsys):
    from sparsebench.runner import run
    from sparsebench.spec import RunSpec

    res = run(RunSpec(method="magnitude", model=str(tiny_model_dirs["llama"]), sparsity=0.5, suite="unit"), store, progress=False)
    row = compare_runs(store, res.run_id, res.run_id).iloc[0]
    assert (row["task"], row["metric"], row["delta"], row["p_value"], row["items"]) == ("lambada-ppl", "perplexity", 0.0, 1.0, 2)
