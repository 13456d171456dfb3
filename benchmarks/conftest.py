"""pytest-benchmark suite of per-layer kernel latency (see README "Kernel latency").

    pytest benchmarks/ --benchmark-json=.benchmarks/kernels.json            # quick grid, CPU
    pytest benchmarks/ --grid full --bench-device cuda --bench-dtype float16 --benchmark-json=...
    sparsebench bench-kernels --ingest .benchmarks/kernels.json --db sqlite:///results/sparsebench.db

Each test measures one (shape, tokens, pattern, sparsity, kernel) case with
sparsebench's timing function; the row it records (``extra_info["timing_row"]``) is what
gets ingested. Dense is measured once per case in the session and reused as the baseline.
"""

from __future__ import annotations

import pytest
import torch

from sparsebench.kernel import kernels
from sparsebench.microbench import QUICK_TOKENS, SHAPES, SPARSITIES, TOKENS, default_patterns, grid

QUICK_SHAPES = ("4096x4096", "576x576", "1536x576")


def pytest_addoption(parser):
    group = parser.getgroup("sparsebench kernels")
    group.addoption("--grid", choices=("quick", "full"), default="quick", help="quick: 3 shapes x tokens 1,128; full: the whole grid")
    group.addoption("--bench-device", default="cpu", help="cpu or cuda")
    group.addoption("--bench-dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    group.addoption("--bench-threads", type=int, default=None, help="torch CPU threads (default: torch's setting)")
    group.addoption("--bench-cache", choices=("cold", "hot"), default="cold",
                    help="cold: each call reads a copy of the weight not read for twice the last-level cache; hot: one copy")
    group.addoption("--bench-kernels", default=None, help="comma-separated kernels (default: all registered)")


def pytest_generate_tests(metafunc):
    opt = metafunc.config.getoption
    if "case" in metafunc.fixturenames:
        full = opt("--grid") == "full"
        cases = grid(SHAPES if full else QUICK_SHAPES, TOKENS if full else QUICK_TOKENS, SPARSITIES, default_patterns(),
                     getattr(torch, opt("--bench-dtype")), opt("--bench-device"))
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])
    if "kernel_name" in metafunc.fixturenames:
        names = [k.strip() for k in (opt("--bench-kernels") or "").split(",") if k.strip()] or kernels.list()
        metafunc.parametrize("kernel_name", [kernels.canonical(n) for n in names])


@pytest.fixture(scope="session")
def dense_cache() -> dict:
    return {}


@pytest.fixture(scope="session")
def hardware(request) -> str:
    from sparsebench import provenance

    return provenance.hardware_label(request.config.getoption("--bench-device"))


@pytest.fixture(scope="session")
def timing_config(request):
    from sparsebench.timing import TimingConfig

    return TimingConfig(warmup=1, min_iters=5, min_time_s=0.1, threads=request.config.getoption("--bench-threads"),
                        cache=request.config.getoption("--bench-cache"))

