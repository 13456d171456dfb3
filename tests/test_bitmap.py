"""The ``bitmap`` kernel's CPU-specific expand paths and its numba thread pool.

The contract tests in test_kernels.py run the host's default path; here every other path the
host runs is checked against dense in a fresh process (the path is fixed at import).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from sparsebench.kernel import make_kernel

pytest.importorskip("numba")

_CHECK = """
import torch
from sparsebench.kernel import make_kernel
from sparsebench.kernels import _bitmap_simd
torch.manual_seed(0)
k = make_kernel("bitmap")
worst = {}
for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):
    for out, inp, tokens, s in ((37, 200, 1, 0.5), (64, 576, 1, 0.9), (16, 64, 1, 0.0), (40, 576, 12, 0.7), (8, 64, 3, 1.0)):
        w = torch.randn(out, inp).to(dtype)
        mask = torch.rand(out, inp) >= s
        x = torch.randn(tokens, inp).to(dtype)
        ref = torch.nn.functional.linear(x.float(), (w * mask).float())
        got = k.apply(k.pack(w, mask), x).float()
        assert torch.allclose(got, ref, rtol=tol, atol=tol * ref.abs().max().item()), (dtype, out, inp, tokens, s)
print(_bitmap_simd.EXPAND, k.details(k.pack(w, mask))["expand"])
"""


def _host_paths() -> list[str]:
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    return [p for p, f in (("avx512", "avx512f"), ("avx2", "avx2")) if features.get(f)] + ["generic"]


def _run(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("path", ["avx512", "avx2", "generic"])
def test_every_expand_path_the_host_runs_agrees_with_dense(path, tmp_path):
    if path not in _host_paths():
        pytest.skip(f"this CPU does not run the {path} expand")
    out = _run(_CHECK, tmp_path, SPARSEBENCH_BITMAP_EXPAND=path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [path, path]


def test_the_default_expand_is_the_fastest_the_host_runs(tmp_path):
    from sparsebench.kernels import _bitmap_simd

    assert _bitmap_simd.EXPAND == _host_paths()[0]
    k = make_kernel("bitmap")
    assert k.details(k.pack(torch.ones(2, 16), torch.ones(2, 16, dtype=torch.bool)))["expand"] == _host_paths()[0]


def test_an_expand_the_host_cannot_run_is_a_one_line_error(tmp_path):
    missing = "avx512" if "avx512" not in _host_paths() else "nonsense"
    out = _run("from sparsebench.kernels import _bitmap_simd", tmp_path, SPARSEBENCH_BITMAP_EXPAND=missing)
    assert out.returncode != 0
    assert f"SPARSEBENCH_BITMAP_EXPAND={missing!r}: this CPU runs" in out.stderr.strip().splitlines()[-1]


def test_the_expand_table_lists_each_set_lane_by_rank_and_marks_clear_lanes():
    from llvmlite import ir

    from sparsebench.kernels import _bitmap_simd

    if _bitmap_simd.GROUP != 8:
        pytest.skip("the lane table is the avx2 path's (8-lane groups)")
    table = _bitmap_simd._permute_table(ir.Module()).initializer.constant
    rows = [[int(c.constant) for c in row.constant] for row in table]
    assert rows[0] == [-1] * 8 and rows[255] == list(range(8))
    assert rows[0b10100110] == [-1, 0, 1, -1, -1, 2, -1, 3]


def test_bitmap_leaves_torch_threads_alone_when_numba_starts(tmp_path):
    code = ("import torch; from sparsebench.kernel import make_kernel; k = make_kernel('bitmap'); "
            "w = torch.randn(64, 128); m = torch.rand(64, 128) > 0.5; k.apply(k.pack(w, m), torch.randn(1, 128)); "
            "print(torch.get_num_threads())")
    out = _run(code, tmp_path, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="2")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "1"
