"""``bsr``: torch block sparse rows (int32 indices where they fit); only tiles that are entirely zero are skipped."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from sparsebench.kernel import KernelUnsupported, Support, kernels

from .csr import TorchSparseKernel, int32_indices


@kernels.register("bsr")
class BSR(TorchSparseKernel):
    description = "torch sparse BSR matmul with square blocks (blocksize, default 16); pays off for block patterns"
    support = Support(dtypes=(torch.float32,), devices=("cpu", "cuda"), limits="torch's CPU sparse BSR kernels have no 16-bit types")

    def __init__(self, blocksize: int = 16):
        if int(blocksize) < 1:
            raise KernelUnsupported(f"bsr block size must be positive, got {blocksize}")
        self.blocksize = int(blocksize)

    @property
    def params(self) -> dict[str, Any]:
        return {"blocksize": self.blocksize}

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = self.blocksize
        rows, cols = weight.shape
        if rows % b or cols % b:
            raise KernelUnsupported(f"bsr with {b}x{b} blocks needs the weight shape {rows}x{cols} to be divisible by {b}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return int32_indices((weight * mask.to(weight.dtype)).to_sparse_bsr((b, b)))

    def details(self, packed: Any) -> dict[str, Any]:
        b = self.blocksize
        total = packed.shape[0] * packed.shape[1] // (b * b)
        stored = int(packed.values().shape[0])
        return {"blocksize": b, "stored_blocks": stored, "block_density": stored / total if total else 0.0}
