"""Seeds: ``run --seeds`` stores one run per seed; ``results`` aggregates runs that differ only in seed."""

from __future__ import annotations

import numpy as np
import pytest

from sparsebench.cli import main
from sparsebench.confidence import seed_summary
from sparsebench.items import ItemScores
from sparsebench.results import Estimate, compact, estimate
from sparsebench.testing import synthetic_run


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_run_seeds_stores_one_run_per_seed_and_results_aggregate_them(capsys, tmp_path, tiny_model_dirs, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["run", "--db", db, "--model", str(tiny_model_dirs["llama"]), "--suite", "unit", "-m", "wanda", "--no-progress"]
    code, out, err = _cli(capsys, *args, "--seeds", "0,1")
    assert code == 0, err
    assert "stored run 1" in err and "stored run 2" in err
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[-2:] == ["seeds", "lambada-ppl"]  # one row for both seeds
    assert lines[2].split()[0] == "1,2" and " 2 " in lines[2] and "±" in lines[2]
    from sparsebench.store import Store

    store = Store(db, create=False)
    runs = store.runs()
    assert sorted(runs["seed"]) == [0, 1] and runs["calibration"].nunique() == 2  # the seed moves the calibration sample
    m = store.metrics()
    s = seed_summary([ItemScores.from_payload(p) for p in m["items"]])
    assert s.mean == pytest.approx(m["value"].mean()) and s.sd == pytest.approx(m["value"].std(ddof=1))
    assert Estimate(s.mean, s.interval.low, s.interval.high, s.sd, s.seeds).text() in lines[2]  # the seeds' mean, sd and interval
    code, out, err = _cli(capsys, *args, "--seeds", "1,0")  # both stored: skipped, and shown again
    assert code == 0 and "already stored as run 2" in err and "already stored as run 1" in err and "1,2" in out


@pytest.mark.parametrize(("extra", "message"), [(["--seed", "1", "--seeds", "0,1"], "not both"), (["--seeds", "0,x"], "integers"),
                                                (["--seeds", "0,0"], "distinct")])
def test_bad_seeds_are_one_line(capsys, tmp_path, extra, message):
    code, out, err = _cli(capsys, "run", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--suite", "unit", *extra)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()


def test_estimate_of_one_run_and_of_a_seed_group(store):
    rng = np.random.default_rng(1)
    for seed in range(3):
        store.write_run(synthetic_run("wanda", "tiny", 0, seed=seed, task=("piqa", "1", "acc", True),
                                      items=ItemScores.of(range(30), rng.random(30) < 0.6)))
    m = store.metrics()
    one = estimate(m.iloc[:1])
    assert (one.value, one.low, one.high, one.sd, one.seeds) == (m["value"][0], m["ci_low"][0], m["ci_high"][0], None, 1)
    three = estimate(m)
    assert three.seeds == 3 and three.value == pytest.approx(m["value"].mean()) and three.sd == pytest.approx(m["value"].std(ddof=1))
    table = compact(store.runs(), m)
    assert len(table) == 1 and table["id"][0] == "1,2,3" and table["seeds"][0] == 3 and table["piqa"][0] == three.text()


def test_an_interval_is_printed_to_three_significant_digits_and_the_value_to_four():
    assert Estimate(0.56, 0.46, 0.6502).text() == "0.56 [0.46, 0.65]"
    assert Estimate(98.75, 92.83, 105.44).text() == "98.75 [92.8, 105]"
    assert Estimate(0.4533, 0.3567, 0.5434, sd=0.032, seeds=3).text() == "0.4533 ±0.032 [0.357, 0.543]"
    assert Estimate(2622.0, 2286.3, 3113.0).text() == "2622 [2286, 3113]"
    assert Estimate(47594.2, 31773.4, 83461.0).text() == "47594 [31773, 83461]"  # never 4.759e+04
    assert Estimate(5.6775715444185e13, 4.853197021951e12, 6.72740813232159e14).text() == "5.68e+13 [4.85e+12, 6.73e+14]"
    assert Estimate(999_999.4, 99_999.0, 1_000_001.0).text() == "999999 [99999, 1e+06]"
    assert Estimate(0.58).text() == "0.58"


def test_a_seed_groups_interval_does_not_depend_on_the_order_its_runs_were_stored(tmp_path):
    """The same three seeds stored 0,1,2 and 2,1,0: ``results`` resamples them in seed order, so
    the interval is the same (the crossed bootstrap draws seeds by position)."""
    from sparsebench.store import Store

    rng = np.random.default_rng(3)
    hits = {seed: rng.random(40) < 0.3 + 0.2 * seed for seed in range(3)}
    texts = []
    for name, order in (("up", (0, 1, 2)), ("down", (2, 1, 0))):
        store = Store(f"sqlite:///{tmp_path / name}.db")
        for seed in order:
            store.write_run(synthetic_run("wanda", "tiny", 0, seed=seed, task=("piqa", "1", "acc", True),
                                          items=ItemScores.of(range(40), hits[seed])))
        texts.append(compact(store.runs(), store.metrics())["piqa"][0])
    assert texts[0] == texts[1] and "±" in texts[0]
