"""Kernel contract tests, run for every registered kernel (a new kernel gets them for free)."""

from __future__ import annotations

import pytest
import torch

from sparsebench.errors import InvalidSpecError
from sparsebench.kernel import Kernel, KernelUnsupported, SparseLinear, Support, check_against_dense, ideal_speedup, kernels, make_kernel
from sparsebench.microbench import Case, bench_case, grid, make_inputs, parse_shape
from sparsebench.patterns import NM, Block, Unstructured
from sparsebench.timing import TimingConfig

KERNELS = kernels.list()
FAST = TimingConfig(warmup=0, min_iters=2, min_time_s=0.0)
CPU = torch.device("cpu")
CASES = [
    Case(64, 128, 1, Unstructured(), 0.7),
    Case(64, 128, 5, Unstructured(), 0.9),
    Case(64, 128, 3, Block(16, 16), 0.5),
    Case(64, 128, 4, NM(2, 4), 0.5),
]


def test_builtin_kernels_registered():
    assert {"dense", "csr", "bsr", "semi_structured", "scipy_csr"} <= set(KERNELS)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_dense_or_says_why_not(name, case):
    k = make_kernel(name)
    ok, why = k.supports(case.pattern, case.dtype, CPU)
    (row,) = bench_case(case, [k], FAST, "test")
    if not ok:
        assert why and row["status"] == "unsupported" and row["reason"] == why
        assert row["median_s"] is None and row["speedup"] is None  # never timed as dense
        return
    w, mask, x = make_inputs(case)
    packed = k.pack(w, mask)
    check = check_against_dense(k, packed, w * mask, x)
    assert check.ok, check.reason
    x3 = torch.randn(2, 3, case.inp)  # leading batch dimensions are kept
    assert torch.allclose(k.apply(packed, x3), torch.nn.functional.linear(x3, w * mask), rtol=1e-4, atol=1e-5)
    assert row["status"] == "ok", row["reason"]
    assert row["median_s"] > 0 and row["dense_median_s"] > 0 and row["iterations"] >= 2
    assert row["speedup"] == pytest.approx(row["dense_median_s"] / row["median_s"])
    assert row["ideal_speedup"] == pytest.approx(ideal_speedup(case.pattern, case.sparsity))


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


def test_make_kernel_ignores_params_it_does_not_take():
    assert make_kernel("bsr", blocksize=8).params == {"blocksize": 8}
    assert make_kernel("csr", blocksize=8).params == {}


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
