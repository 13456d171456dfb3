"""Kernel contract tests, run for every registered kernel (a new kernel gets them for free)."""

from __future__ import annotations

import pytest
import torch

from sparsebench.errors import InvalidSpecError
from sparsebench.kernel import (Kernel, KernelUnsupported, SparseLinear, Support, bounds, check_against_dense, ideal_speedup, kernels,
                                make_kernel, nbytes)
from sparsebench.microbench import Case, bench_case, grid, make_inputs, parse_shape
from sparsebench.patterns import NM, Block, Unstructured
from sparsebench.timing import TimingConfig

KERNELS = kernels.list()
FAST = TimingConfig(warmup=0, min_iters=2, min_time_s=0.0, cache="hot")
CPU = torch.device("cpu")
BF16 = torch.bfloat16

CASES = [
    Case(64, 128, 1, Unstructured(), 0.7),
    Case(64, 128, 5, Unstructured(), 0.9),
    Case(64, 128, 3, Block(16, 16), 0.5),
    Case(64, 128, 4, NM(2, 4), 0.5),
    Case(24, 40, 9, Unstructured(), 0.5),  # no dimension a multiple of 16; 9 tokens
    Case(64, 128, 1, Unstructured(), 0.7, BF16),
    Case(64, 128, 9, Unstructured(), 0.5, BF16),
    # SmolLM2-135M's layer shapes, few tokens
    Case(576, 576, 1, Unstructured(), 0.5),
    Case(1536, 576, 2, Unstructured(), 0.7),
    Case(576, 1536, 3, Unstructured(), 0.5),
    Case(576, 1536, 1, Unstructured(), 0.5, BF16),
    Case(1536, 576, 16, Unstructured(), 0.6, BF16),
]


def test_builtin_kernels_registered():
    assert {"dense", "csr", "bsr", "semi_structured", "scipy_csr", "mkl_csr", "bitmap"} <= set(KERNELS)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}-{str(c.dtype).removeprefix('torch.')}")
def test_matches_dense_or_says_why_not(name, case):
    k = make_kernel(name)
    ok, why = k.supports(case.pattern, case.dtype, CPU)
    (row,) = bench_case(case, [k], FAST, "test")
    assert row["details"]["cache"] == "hot"
    if not ok:
        assert why and row["status"] == "unsupported" and row["reason"] == why
        assert row["median_s"] is None and row["speedup"] is None  # never timed as dense
        return
    if row["status"] == "unsupported":  # this weight cannot be packed: the reason says why
        assert row["reason"] and row["median_s"] is None
        return
    w, mask, x = make_inputs(case)
    packed = k.pack(w, mask)
    check = check_against_dense(k, packed, w * mask, x)
    assert check.ok, check.reason
    x3 = torch.randn(2, 3, case.inp).to(case.dtype)  # leading batch dimensions are kept
    rtol, atol = k.tolerance(case.dtype)
    ref = torch.nn.functional.linear(x3.double(), (w * mask).double())
    assert torch.allclose(k.apply(packed, x3).double(), ref, rtol=rtol, atol=atol)
    assert k.apply(packed, x3).dtype == case.dtype
    assert row["status"] == "ok", row["reason"]
    assert row["median_s"] > 0 and row["dense_median_s"] > 0 and row["iterations"] >= 2
    assert row["speedup"] == pytest.approx(row["dense_median_s"] / row["median_s"])
    assert row["ideal_speedup"] == pytest.approx(ideal_speedup(case.pattern, case.sparsity))
    limits = bounds(k, packed, case.pattern, case.sparsity, (case.out, case.inp), case.dtype)
    assert row["details"]["packed_bytes"] == k.packed_bytes(packed) > 0
    assert row["details"]["bytes_bound"] == pytest.approx(limits.bytes_bound)
    assert row["details"]["bytes_bound_share"] == pytest.approx(row["speedup"] / limits.bytes_bound)


class _Refuses(Kernel):
    """Says it cannot run anything; calling it would raise, so a timed unsupported case fails the test."""

    name = "refuses"
    support = Support(dtypes=())

    def pack(self, weight, mask):
        raise AssertionError("an unsupported kernel was packed")

    def apply(self, packed, x):
        raise AssertionError("an unsupported kernel was called")

    def packed_bytes(self, packed):
        raise AssertionError("an unsupported kernel was sized")


def test_an_unsupported_case_is_never_packed_or_timed(monkeypatch):
    import sparsebench.microbench as microbench

    timed = []
    real = microbench.measure
    monkeypatch.setattr(microbench, "measure", lambda fn, *a, **kw: timed.append(fn) or real(fn, *a, **kw))
    (row,) = bench_case(CASES[0], [_Refuses()], FAST, "test")
    assert row["status"] == "unsupported" and "does not run float32" in row["reason"]
    assert len(timed) == microbench.ROUNDS  # dense, the baseline, only (once per interleaved round)


@pytest.mark.parametrize("name", KERNELS)
def test_sparse_linear_module_matches_linear(name):
    k = make_kernel(name)
    if not k.supports(Unstructured(), torch.float32, CPU)[0]:
        pytest.skip(f"{name} does not run unstructured float32 on CPU")
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32)
    mask = torch.rand(32, 64) > 0.6
    with torch.no_grad():
        lin.weight.mul_(mask)
    mod = SparseLinear(k, k.pack(lin.weight.detach(), mask), lin.bias, 64, 32)
    x = torch.randn(2, 7, 64)
    with torch.no_grad():
        assert torch.allclose(mod(x), lin(x), rtol=1e-4, atol=1e-5)


class _Wrong(Kernel):
    """Drops the last input column: must be caught before timing."""

    name = "wrong"
    support = Support()

    def pack(self, weight, mask):
        w = (weight * mask).clone()
        w[:, -1] = 0
        return w

    def apply(self, packed, x):
        return x @ packed.t()

    def packed_bytes(self, packed):
        return nbytes(packed)


def test_wrong_kernel_fails_and_is_not_timed():
    (row,) = bench_case(CASES[1], [_Wrong()], FAST, "test")
    assert row["status"] == "failed" and "differs from dense" in row["reason"]
    assert row["median_s"] is None and row["max_abs_error"] > 0


def test_unpackable_shape_is_unsupported_with_reason():
    case = Case(24, 40, 2, Unstructured(), 0.5)
    (row,) = bench_case(case, [make_kernel("bsr", blocksize=16)], FAST, "test")
    assert row["status"] == "unsupported" and "divisible by 16" in row["reason"]
    with pytest.raises(KernelUnsupported):
        make_kernel("bsr", blocksize=0)


def test_semi_structured_on_cpu_is_unsupported_with_the_reason():
    ok, why = make_kernel("semi_structured").supports(NM(2, 4), torch.float16, CPU)
    assert not ok and "CUDA" in why and "8.0" in why


@pytest.mark.parametrize("name", ["csr", "bsr", "scipy_csr", "mkl_csr"])
def test_kernels_without_bfloat16_say_why(name):
    k = make_kernel(name)
    ok, why = k.supports(Unstructured(), BF16, CPU)
    assert not ok and ("bfloat16" in why or "16-bit" in why or "not importable" in why)


def _tiny():
    """A 4x32 weight with 1, 0, 3 and 32 kept values per row."""
    w = torch.arange(1, 129, dtype=torch.float32).reshape(4, 32)
    mask = torch.zeros(4, 32, dtype=torch.bool)
    mask[0, 5] = True
    mask[2, [0, 17, 31]] = True
    mask[3] = True
    return w, mask


def test_bytes_bound_by_hand():
    w, mask = _tiny()  # 36 kept of 128; dense reads 128 * 4 = 512 bytes
    csr = make_kernel("csr")
    packed = csr.pack(w, mask)
    assert packed.col_indices().dtype == torch.int32
    assert csr.packed_bytes(packed) == 36 * 4 + 36 * 4 + 5 * 4  # values, int32 columns, int32 row pointers
    b = bounds(csr, packed, Unstructured(), 92 / 128, (4, 32), torch.float32)
    assert b.dense_bytes == 512 and b.bytes_bound == pytest.approx(512 / 308)
    assert b.share(1.0) == pytest.approx(308 / 512) and b.flop_ideal == pytest.approx(128 / 36)
    bitmap = make_kernel("bitmap")
    # values and 16 zeros after them, one int64 row start per row, one 16-bit word per 16 columns (rows padded to 64 columns)
    assert bitmap.packed_bytes(bitmap.pack(w, mask)) == (36 + 16) * 4 + 4 * 8 + 4 * 4 * 2
    assert bitmap.packed_bytes(bitmap.pack(w.bfloat16(), mask)) == (36 + 16) * 2 + 4 * 8 + 4 * 4 * 2
    dense = make_kernel("dense")
    assert bounds(dense, dense.pack(w, mask), Unstructured(), 0.5, (4, 32), torch.float32).bytes_bound == 1.0


def test_bitmap_layout_by_hand():
    w, mask = _tiny()
    packed = make_kernel("bitmap").pack(w, mask)
    assert packed.values.tolist() == [6.0, 65.0, 82.0, 96.0, *range(97, 129), *[0.0] * 16]
    assert packed.row_start.tolist() == [0, 1, 1, 4]
    assert packed.words[0].tolist() == [1 << 5, 0, 0, 0]
    assert packed.words[2].tolist() == [1, (1 << 1) | (1 << 15), 0, 0]
    assert packed.words[3].tolist() == [0xFFFF, 0xFFFF, 0, 0]


@pytest.mark.parametrize("name", ["csr", "bsr"])
def test_int32_indices_give_the_int64_results(name):
    w, mask, x = make_inputs(Case(64, 128, 5, Block(16, 16), 0.5))
    packed = make_kernel(name).pack(w, mask)
    assert packed.crow_indices().dtype == packed.col_indices().dtype == torch.int32
    wide = (w * mask).to_sparse_csr() if name == "csr" else (w * mask).to_sparse_bsr((16, 16))
    assert wide.col_indices().dtype == torch.int64
    for t in (x[:1], x):
        assert torch.equal(make_kernel(name).apply(packed, t), make_kernel(name).apply(wide, t))


def test_threaded_kernels_follow_torch_threads():
    w, mask, x = make_inputs(Case(64, 128, 1, Unstructured(), 0.5))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        k = make_kernel("bitmap")
        k.apply(k.pack(w, mask), x)
        import numba

        assert numba.get_num_threads() == 1
        mkl = make_kernel("mkl_csr")
        if mkl.available(CPU)[0]:
            import sparse_dot_mkl

            mkl.apply(mkl.pack(w, mask), x)
            assert sparse_dot_mkl.mkl_get_max_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_make_kernel_ignores_params_it_does_not_take():
    assert make_kernel("bsr", blocksize=8).params == {"blocksize": 8}
    assert make_kernel("csr", blocksize=8).params == {}


def test_nbytes_counts_every_array_of_a_sparse_tensor():
    import numpy as np

    t = torch.eye(4).to_sparse_csr()
    assert nbytes(t) == 4 * 4 + 4 * 8 + 5 * 8
    assert nbytes(np.zeros(3, np.uint16), torch.zeros(2, dtype=BF16)) == 6 + 4
    with pytest.raises(TypeError):
        nbytes([1, 2])


def test_ideal_speedup():
    assert ideal_speedup(Unstructured(), 0.9) == pytest.approx(10.0)
    assert ideal_speedup(NM(2, 4), 0.5) == 2.0
    assert ideal_speedup(Block(4, 4), 0.0) == 1.0


def test_grid_filters_patterns_by_sparsity_and_shape():
    cases = grid(["64x128", "24x40"], [1], [0.5, 0.9], [Unstructured(), Block(16, 16), NM(2, 4)])
    names = {c.name for c in cases}
    assert "64x128-t1-2:4-s0.5" in names and "64x128-t1-2:4-s0.9" not in names
    assert not any(c.out == 24 and isinstance(c.pattern, Block) for c in cases)
    with pytest.raises(InvalidSpecError):
        parse_shape("64by128")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_semi_structured_on_gpu(dtype):
    k = make_kernel("semi_structured")
    dev = torch.device("cuda")
    ok, why = k.supports(NM(2, 4), dtype, dev)
    if not ok:
        pytest.skip(why)
    case = Case(256, 512, 64, NM(2, 4), 0.5, dtype, "cuda")
    (row,) = bench_case(case, [k], FAST, "test")
    assert row["status"] == "ok", row["reason"]
    assert row["details"]["backend"] in ("cuSPARSELt", "CUTLASS")
    assert row["details"]["clock"] == "cuda-events"


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["dense", "csr", "bsr"])
def test_kernels_on_gpu_match_dense(name):
    (row,) = bench_case(Case(256, 512, 16, Block(16, 16), 0.75, torch.float32, "cuda"), [make_kernel(name)], FAST, "test")
    assert row["status"] == "ok", row["reason"]


@pytest.mark.gpu
@pytest.mark.parametrize("name, case", [
    ("torchao_bsr", Case(256, 512, 5, Block(64, 64), 0.75, BF16, "cuda")),
    ("torchao_bsr", Case(256, 512, 16, Block(64, 64), 0.9, torch.float16, "cuda")),
    ("torchao_fp8_24", Case(256, 512, 16, NM(2, 4), 0.5, BF16, "cuda")),
], ids=lambda v: v if isinstance(v, str) else v.name)
def test_torchao_kernels_on_gpu_match_dense(name, case):
    k = make_kernel(name)
    ok, why = k.supports(case.pattern, case.dtype, torch.device("cuda"))
    if not ok:
        pytest.skip(why)
    (row,) = bench_case(case, [k], FAST, "test")
    assert row["status"] == "ok", row["reason"]
    assert row["details"]["packed_bytes"] > 0 and row["details"]["clock"] == "cuda-events"


def test_torchao_kernels_without_cuda_say_why():
    for name in ("torchao_bsr", "torchao_fp8_24"):
        ok, why = make_kernel(name).available(CPU)
        assert not ok and "needs CUDA" in why


@pytest.mark.parametrize("name", [n for n in KERNELS if make_kernel(n).supports(Unstructured(), torch.float32, CPU)[0]])
def test_copy_packed_is_an_equal_copy_in_its_own_memory(name):
    import numpy as np

    k = make_kernel(name)
    w, mask, x = make_inputs(Case(64, 128, 3, Unstructured(), 0.5))
    packed = k.pack(w, mask)
    other = k.copy_packed(packed, w, mask)
    assert torch.equal(k.apply(packed, x), k.apply(other, x)) and k.packed_bytes(other) == k.packed_bytes(packed)

    def buffers(p):
        if isinstance(p, torch.Tensor):
            return {p.values().data_ptr(), p.col_indices().data_ptr()} if p.is_sparse_csr or p.layout == torch.sparse_bsr else {p.data_ptr()}
        arrays = [getattr(p, a) for a in ("values", "words", "data", "indices") if isinstance(getattr(p, a, None), np.ndarray)]
        return {a.__array_interface__["data"][0] for a in arrays}

    assert buffers(packed) and not buffers(packed) & buffers(other)
