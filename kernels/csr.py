"""``csr``: torch sparse CSR (MKL on CPU, cuSPARSE on CUDA)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from sparsebench.kernel import Kernel, Support, kernels


def sparse_linear(packed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x @ W.T`` for a sparse ``[out, in]`` matrix ``packed``: computed as ``(W @ x.T).T``."""
    x2 = x.reshape(-1, x.shape[-1])
    if x2.shape[0] == 1 and packed.layout == torch.sparse_csr:
        y = torch.mv(packed, x2[0]).unsqueeze(0)  # a matrix-vector product is faster than mm for one token
    else:
        y = (packed @ x2.t().contiguous()).t()
    return y.reshape(*x.shape[:-1], packed.shape[0])


@kernels.register("csr")
class CSR(Kernel):
    description = "torch sparse CSR matmul (MKL on CPU, cuSPARSE on CUDA); any mask"
    support = Support(dtypes=(torch.float32,), devices=("cpu", "cuda"))

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return (weight * mask.to(weight.dtype)).to_sparse_csr()

    def apply(self, packed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return sparse_linear(packed, x)

    def details(self, packed: Any) -> dict[str, Any]:
        return {"nnz": int(packed.values().numel())}
