"""``csr``: torch sparse CSR (MKL on CPU, cuSPARSE on CUDA) with 32-bit indices where they fit.

``to_sparse_csr()`` keeps int64 row pointers and column indices; torch's CPU kernel accepts
int32 ones too, which halve the index bytes: measured side by side on this project's Xeon
(4096x4096 float32, one token, 1 thread, hot), int32 indices ran 2.6x faster at 50% sparsity
and 3.2x at 90% than int64 ones, with the same results.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from sparsebench.kernel import Kernel, Support, kernels, nbytes

INT32_MAX = 2**31 - 1


def int32_indices(packed: torch.Tensor) -> torch.Tensor:
    """The same CSR / BSR tensor with int32 ``crow``/``col`` indices when every index fits."""
    crow, col = packed.crow_indices(), packed.col_indices()
    if max(packed.shape) > INT32_MAX or int(crow[-1]) > INT32_MAX:
        return packed
    make = torch.sparse_csr_tensor if packed.layout == torch.sparse_csr else torch.sparse_bsr_tensor
    with warnings.catch_warnings():  # "sparse invariant checks are implicitly disabled"
        warnings.simplefilter("ignore", UserWarning)
        return make(crow.to(torch.int32), col.to(torch.int32), packed.values(), packed.shape)


def sparse_linear(packed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x @ W.T`` for a sparse ``[out, in]`` matrix ``packed``: computed as ``(W @ x.T).T``."""
    x2 = x.reshape(-1, x.shape[-1])
    if x2.shape[0] == 1 and packed.layout == torch.sparse_csr:
        y = torch.mv(packed, x2[0]).unsqueeze(0)  # a matrix-vector product is faster than mm for one token
    else:
        y = (packed @ x2.t().contiguous()).t()
    return y.reshape(*x.shape[:-1], packed.shape[0])


class TorchSparseKernel(Kernel):
    """A kernel whose packed weight is one torch sparse tensor (CSR or BSR layout), applied by
    :func:`sparse_linear`; subclasses say how to pack."""

    def apply(self, packed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return sparse_linear(packed, x)

    def copy_packed(self, packed: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return packed.clone()

    def packed_bytes(self, packed: torch.Tensor) -> int:
        return nbytes(packed)


@kernels.register("csr")
class CSR(TorchSparseKernel):
    description = "torch sparse CSR matmul (MKL on CPU, cuSPARSE on CUDA), int32 indices; any mask"
    support = Support(dtypes=(torch.float32,), devices=("cpu", "cuda"), limits="torch's CPU sparse CSR kernels have no 16-bit types")

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return int32_indices((weight * mask.to(weight.dtype)).to_sparse_csr())

    def details(self, packed: Any) -> dict[str, Any]:
        return {"nnz": int(packed.values().numel()), "index_dtype": str(packed.col_indices().dtype).removeprefix("torch.")}
