"""One benchmark per (case, kernel); the measured row goes to ``extra_info`` for ingestion.

The number that counts is sparsebench's own measurement (median with p10/p90 over at least
N calls and T seconds, ratio to dense from this session); pytest-benchmark's statistics
here time the whole measurement once and are not used.
"""

from __future__ import annotations

from sparsebench.kernel import make_kernel
from sparsebench.microbench import bench_case


def test_layer_latency(benchmark, case, kernel_name, dense_cache, hardware, timing_config):
    kernel = make_kernel(kernel_name)
    rows = benchmark.pedantic(bench_case, args=(case, [kernel], timing_config, hardware), kwargs={"dense_cache": dense_cache},
                              rounds=1, iterations=1)
    (row,) = rows
    benchmark.extra_info["timing_row"] = row
    assert row["status"] in ("ok", "unsupported"), row["reason"]  # "failed" = wrong output
    if row["status"] == "ok":
        assert row["median_s"] > 0 and row["dense_median_s"] > 0
    else:
        assert row["reason"] and row["median_s"] is None
