"""`sparsebench bench-kernels`: filters, ratios beside ideals, unsupported rows, storage and ingestion."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sparsebench.cli import cli, main
from sparsebench.kernel import make_kernel
from sparsebench.microbench import Case, bench_case, rows_from_benchmark_json
from sparsebench.patterns import Unstructured
from sparsebench.store import Store
from sparsebench.timing import TimingConfig

ARGS = ["bench-kernels", "--shape", "64x128", "--tokens", "1,4", "--sparsity", "0.9", "--quick", "--min-time", "0", "--no-progress"]


def test_prints_ratios_and_unsupported_and_stores(tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = CliRunner().invoke(cli, [*ARGS, "--db", db])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "semi_structured" in out and "unsupported" in out and "needs a CUDA GPU" in out
    assert "10.00x" in out  # the ideal at 90%
    t = Store(db).timings()
    assert set(t["kernel"]) >= {"dense", "csr", "bsr", "scipy_csr", "semi_structured"}
    assert set(t["pattern"]) == {"unstructured", "block16x16"}  # 2:4 implies 50%, filtered out
    ok = t[t["status"] == "ok"]
    assert (ok["speedup"] > 0).all() and (ok["dense_median_s"] > 0).all()
    assert (ok[ok["kernel"] == "dense"]["speedup"] == 1.0).all()
    assert t[t["status"] == "unsupported"]["median_s"].isna().all()


def test_kernel_and_pattern_filters():
    res = CliRunner().invoke(cli, [*ARGS, "--kernel", "csr", "--pattern", "unstructured"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "unstructured" in line]
    assert len(lines) == 2 and all(" csr " in line for line in lines)


@pytest.mark.parametrize("bad", [["--shape", "64by128"], ["--sparsity", "1.5"], ["--kernel", "nope"], ["--tokens", "x"],
                                 ["--pattern", "2:4"]])
def test_bad_input_is_one_line_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*ARGS, *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_ingest_pytest_benchmark_json(tmp_path):
    rows = bench_case(Case(64, 128, 2, Unstructured(), 0.7), [make_kernel("csr")], TimingConfig(0, 2, 0.0), "test")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": [{"name": "x", "extra_info": {"timing_row": rows[0]}, "stats": {}}]}))
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = CliRunner().invoke(cli, ["bench-kernels", "--ingest", str(path), "--db", db])
    assert res.exit_code == 0, res.output
    t = Store(db).timings()
    assert len(t) == 1 and t["kernel"][0] == "csr" and t["median_s"][0] == pytest.approx(rows[0]["median_s"])
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(Exception, match="not a pytest-benchmark JSON"):
        rows_from_benchmark_json(tmp_path / "other.json")
