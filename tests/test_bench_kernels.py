"""`sparsebench bench-kernels`: filters, ratios beside their limits, regimes, unsupported rows, storage and ingestion."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sparsebench.cli import cli, main
from sparsebench.kernel import make_kernel
from sparsebench.kernel_report import markdown
from sparsebench.microbench import Case, bench_case, rows_from_json
from sparsebench.patterns import Unstructured
from sparsebench.store import Store
from sparsebench.timing import TimingConfig

ARGS = ["bench-kernels", "--shape", "64x128", "--tokens", "1,4", "--sparsity", "0.9", "--quick", "--min-time", "0", "--no-progress",
        "--cache", "hot", "--threads", "1"]


def test_prints_ratios_and_unsupported_and_stores(tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = CliRunner().invoke(cli, [*ARGS, "--db", db])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "semi_structured" in out and "unsupported" in out and "needs a CUDA GPU" in out
    assert "10.00x" in out  # the FLOP ideal at 90%
    assert "bytes_bound" in out and "of_bound" in out
    t = Store(db).timings()
    assert set(t["kernel"]) >= {"dense", "csr", "bsr", "scipy_csr", "semi_structured"}
    assert set(t["pattern"]) == {"unstructured", "block16x16"}  # 2:4 implies 50%, filtered out
    ok = t[t["status"] == "ok"]
    assert (ok["speedup"] > 0).all() and (ok["dense_median_s"] > 0).all()
    assert (ok[ok["kernel"] == "dense"]["speedup"] == 1.0).all()
    assert t[t["status"] == "unsupported"]["median_s"].isna().all()
    assert (t["details"].map(lambda d: d["cache"]) == "hot").all()
    assert (ok["threads"] == 1).all()
    compressed = ok[ok["kernel"].isin(["csr", "bitmap", "scipy_csr", "mkl_csr"])]  # bsr stores every 16x16 tile at 90% unstructured
    assert len(compressed) and (compressed["details"].map(lambda d: d["bytes_bound"]) > 1).all()
    assert (ok[ok["kernel"] == "dense"]["details"].map(lambda d: d["bytes_bound"]) == 1.0).all()


def test_kernel_and_pattern_filters():
    res = CliRunner().invoke(cli, [*ARGS, "--kernel", "csr", "--pattern", "unstructured"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "unstructured" in line]
    assert len(lines) == 2 and all(" csr " in line for line in lines)


def test_cold_and_hot_and_both_dtypes_with_markdown_and_json(tmp_path):
    md, js, db = tmp_path / "t.md", tmp_path / "t.json", f"sqlite:///{tmp_path / 'k.db'}"
    args = [*ARGS[:-4], "--kernel", "dense,csr,bitmap", "--pattern", "unstructured", "--tokens", "1", "--cache", "cold,hot",
            "--dtype", "float32,bfloat16", "--evict-mb", "1", "--threads", "1", "--markdown", str(md), "--json", str(js)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "last read 1 MiB ago" in res.output and "bfloat16, cold cache" in res.output
    rows = rows_from_json(js)
    regimes = {(r["dtype"], r["details"]["cache"]) for r in rows}
    assert regimes == {(d, c) for d in ("float32", "bfloat16") for c in ("cold", "hot")}
    cold = [r for r in rows if r["details"]["cache"] == "cold" and r["status"] == "ok"]
    assert cold and all(r["details"]["cold_by"] == "rotation" and r["details"]["rotated_bytes"] >= 2**20 for r in cold)
    assert all(r["details"]["copies"] == 2**20 // r["details"]["packed_bytes"] + 2 for r in cold if r["kernel"] != "dense")
    csr_bf16 = next(r for r in rows if r["kernel"] == "csr" and r["dtype"] == "bfloat16")
    assert csr_bf16["status"] == "unsupported" and "16-bit" in csr_bf16["reason"]
    text = md.read_text()
    assert "### 64x128, unstructured, bfloat16, cold cache, 1 thread(s)" in text
    assert "| 0.9 | 1 |" in text and "unsupported" in text and "% of " in text
    res = CliRunner().invoke(cli, ["bench-kernels", "--ingest", str(js), "--db", db])
    assert res.exit_code == 0, res.output
    assert len(Store(db).timings()) == len(rows)


def test_markdown_cells_by_hand():
    row = dict(scope="layer", kernel="bitmap", status="ok", reason=None, pattern="unstructured", sparsity=0.5, dtype="float32",
               shape={"out": 8, "in": 8, "tokens": 1}, median_s=1e-3, p10_s=1e-3, p90_s=1e-3, speedup=1.5, ideal_speedup=2.0,
               threads=1, details={"cache": "cold", "bytes_bound": 1.875, "bytes_bound_share": 0.8})
    dense = {**row, "kernel": "dense", "speedup": 1.0, "median_s": 1.5e-3, "details": {"cache": "cold", "bytes_bound": 1.0}}
    text = markdown([dense, row])
    assert "| sparsity | tokens | dense ms | FLOP ideal | bitmap |" in text
    assert "| 0.5 | 1 | 1.5 | 2.00x | 1.50x (80% of 1.88x) |" in text


def test_named_grid_and_unknown_grid(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench-kernels", "--grid", "nope"])
    assert exc.value.code == 2 and "unknown grid 'nope'; grids: default, limits" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--shape", "64by128"], ["--sparsity", "1.5"], ["--kernel", "nope"], ["--tokens", "x"],
                                 ["--pattern", "2:4"], ["--cache", "warm"], ["--dtype", "int8"], ["--threads", "0"],
                                 ["--evict-mb", "0"]])
def test_bad_input_is_one_line_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*ARGS, *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_ingest_pytest_benchmark_json(tmp_path):
    rows = bench_case(Case(64, 128, 2, Unstructured(), 0.7), [make_kernel("csr")], TimingConfig(0, 2, 0.0, cache="hot"), "test")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": [{"name": "x", "extra_info": {"timing_row": rows[0]}, "stats": {}}]}))
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = CliRunner().invoke(cli, ["bench-kernels", "--ingest", str(path), "--db", db])
    assert res.exit_code == 0, res.output
    t = Store(db).timings()
    assert len(t) == 1 and t["kernel"][0] == "csr" and t["median_s"][0] == pytest.approx(rows[0]["median_s"])
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(Exception, match="neither bench-kernels --json output nor a pytest-benchmark JSON"):
        rows_from_json(tmp_path / "other.json")


def test_kernels_page_shows_the_cache_regime_and_the_bytes_bound(tmp_path):
    from sparsebench.site.build import build_site

    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    rows = bench_case(Case(64, 128, 1, Unstructured(), 0.9), [make_kernel("dense"), make_kernel("csr")],
                      TimingConfig(0, 2, 0.0, cache="cold", evict_bytes=2**20), "test-cpu")
    store.write_timings(rows)
    html = (build_site(store, tmp_path / "site", progress=False).out / "kernels.html").read_text(encoding="utf-8")
    csr = next(r for r in rows if r["kernel"] == "csr")
    assert "bytes bound" in html and ">cold<" in html
    assert f"{csr['details']['bytes_bound']:.2f}×" in html


def test_an_interrupted_grid_keeps_its_finished_cases_and_resumes_from_its_json(tmp_path, monkeypatch):
    import sparsebench.microbench as microbench

    js, db = tmp_path / "grid.json", f"sqlite:///{tmp_path / 'k.db'}"
    args = [*ARGS, "--kernel", "dense,csr", "--pattern", "unstructured", "--json", str(js), "--db", db]
    real, calls = microbench.bench_case, []

    def dies_on_the_second_case(*a, **kw):
        calls.append(a[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(microbench, "bench_case", dies_on_the_second_case)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    first = rows_from_json(js)
    assert {(r["kernel"], r["shape"]["tokens"]) for r in first} == {("dense", 1), ("csr", 1)}
    assert len(Store(db).timings()) == 2  # stored as it finished

    monkeypatch.setattr(microbench, "bench_case", real)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "1 of 2 cases already measured" in res.output
    rows = rows_from_json(js)
    assert {(r["kernel"], r["shape"]["tokens"]) for r in rows} == {(k, t) for k in ("dense", "csr") for t in (1, 4)}
    assert [r for r in rows if r["shape"]["tokens"] == 1] == first  # not measured again
    assert len(Store(db).timings()) == 4

    res = CliRunner().invoke(cli, [*args[:-2], "--kernel", "dense,csr,bitmap"])  # a kernel the file lacks: measured again
    assert res.exit_code == 0, res.output
    assert {r["kernel"] for r in rows_from_json(js)} == {"dense", "csr", "bitmap"} and len(rows_from_json(js)) == 6


def test_resuming_a_json_from_another_machine_or_thread_count_is_a_one_line_error(tmp_path, capsys):
    js = tmp_path / "grid.json"
    args = [*ARGS, "--kernel", "dense", "--pattern", "unstructured", "--tokens", "1", "--json", str(js)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with pytest.raises(SystemExit) as exit_:
        main([*args[:-2 - 8], "--threads", "2", "--kernel", "dense", "--pattern", "unstructured", "--tokens", "1", "--json", str(js)])
    assert exit_.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "threads=1; this run is" in err[0] and "threads=2: give another --json file" in err[0]
