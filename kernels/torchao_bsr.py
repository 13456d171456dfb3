"""``torchao_bsr``: torchao's block-sparse weight (BSR), multiplied by a Triton kernel on CUDA.

``torchao.sparsity.blocksparse.BlockSparseTensor`` routes ``F.linear`` to torchao's Triton
``bsr_dense_addmm``. Needs a CUDA GPU, Triton and torchao (``pip install 'sparsebench[torchao]'``).
Tokens are padded to a multiple of 16 for the Triton tiles.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.nn.functional as F

from sparsebench.kernel import Kernel, KernelUnsupported, Support, kernels, nbytes
from sparsebench.patterns import Block, Unstructured

TOKEN_MULTIPLE = 16


def torchao_available(device: torch.device) -> tuple[bool, str]:
    """Whether torchao's CUDA kernels can run on ``device`` (torchao is imported only on a CUDA device)."""
    if device.type != "cuda":
        return False, f"needs CUDA; device is {device.type}"
    if not torch.cuda.is_available():
        return False, "needs CUDA: not available in this PyTorch build or machine"
    if importlib.util.find_spec("torchao") is None:
        return False, "torchao not importable (pip install 'sparsebench[torchao]')"
    return True, ""


@kernels.register("torchao_bsr")
class TorchaoBSR(Kernel):
    description = "torchao BlockSparseTensor: BSR weight, Triton matmul on CUDA (blocksize, default 64)"
    support = Support(patterns=(Block, Unstructured), dtypes=(torch.float16, torch.bfloat16), devices=("cuda",),
                      limits="torchao's Triton BSR kernels run 16-bit types on CUDA")
    rtol = 1e-2
    atol = 1e-2

    def __init__(self, blocksize: int = 64):
        if int(blocksize) < 16:
            raise KernelUnsupported(f"torchao_bsr block size must be at least 16, got {blocksize}")
        self.blocksize = int(blocksize)

    @property
    def params(self) -> dict[str, Any]:
        return {"blocksize": self.blocksize}

    def available(self, device: torch.device) -> tuple[bool, str]:
        ok, why = torchao_available(device)
        if ok and importlib.util.find_spec("triton") is None:
            return False, "needs Triton (not importable)"
        return ok, why

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        from torchao.sparsity.blocksparse import BlockSparseTensor

        b = self.blocksize
        if weight.shape[0] % b or weight.shape[1] % b:
            raise KernelUnsupported(f"torchao_bsr with {b}x{b} blocks needs the weight shape {tuple(weight.shape)} divisible by {b}")
        return BlockSparseTensor.from_dense((weight * mask.to(weight.dtype)).contiguous(), b)

    def apply(self, packed: Any, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        tokens = x2.shape[0]
        padded = -(-tokens // TOKEN_MULTIPLE) * TOKEN_MULTIPLE
        if padded != tokens:
            x2 = torch.cat([x2, x2.new_zeros(padded - tokens, x2.shape[1])])
        return F.linear(x2, packed)[:tokens].reshape(*x.shape[:-1], packed.shape[0])

    def packed_bytes(self, packed: Any) -> int:
        return nbytes(packed.bsr_crow_indices, packed.bsr_col_indices, packed.bsr_values)

    def details(self, packed: Any) -> dict[str, Any]:
        return {"blocksize": self.blocksize, "stored_blocks": int(packed.bsr_values.shape[0])}
