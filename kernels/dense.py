"""``dense``: ``F.linear`` on the masked weight - the baseline every speedup is relative to."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparsebench.kernel import Kernel, Support, kernels, nbytes


@kernels.register("dense")
class Dense(Kernel):
    description = "F.linear on the masked dense weight (BLAS / cuBLAS); the baseline"
    support = Support(dtypes=(torch.float32, torch.float16, torch.bfloat16), devices=("cpu", "cuda"))

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (weight * mask.to(weight.dtype)).contiguous()

    def apply(self, packed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, packed)

    def copy_packed(self, packed: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return packed.clone()

    def packed_bytes(self, packed: torch.Tensor) -> int:
        return nbytes(packed)
