"""``torchao_fp8_24``: 2:4 sparse float8 weights with float8 activations, torchao's CUTLASS kernel (sm90+).

The weight is quantized per row to float8 e4m3 and compressed 2:4
(``Float8Sparse2x4_2DData2DMetadataTensor``); activations are quantized per row on the fly,
and ``rowwise_scaled_linear_sparse_cutlass_f8f8`` multiplies. Float8 rounds both operands
(3 mantissa bits), so it is checked against dense at a loose tolerance. torchao 0.18 has no
int4 + 2:4 (Marlin) layout; this is its quantized 2:4 path. Needs an H100-class GPU and
torchao (``pip install 'sparsebench[torchao]'``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sparsebench.kernel import Kernel, KernelUnsupported, Support, kernels, nbytes
from sparsebench.patterns import NM, Pattern

from .torchao_bsr import torchao_available

MIN_CAPABILITY = (9, 0)


@kernels.register("torchao_fp8_24")
class TorchaoFloat8SemiSparse(Kernel):
    description = "torchao float8 (per-row) weights and activations, 2:4 sparse, CUTLASS on CUDA sm90+"
    support = Support(patterns=(NM,), dtypes=(torch.bfloat16,), devices=("cuda",), limits="torchao's CUTLASS float8 2:4 kernel takes bfloat16")
    rtol = 0.15  # float8 e4m3 on both operands
    atol = 0.3

    def available(self, device: torch.device) -> tuple[bool, str]:
        ok, why = torchao_available(device)
        if ok and torch.cuda.get_device_capability(device) < MIN_CAPABILITY:
            cc = torch.cuda.get_device_capability(device)
            return False, f"needs compute capability >= {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}, found {cc[0]}.{cc[1]}"
        return ok, why

    def supports(self, pattern: Pattern, dtype: torch.dtype, device: torch.device) -> tuple[bool, str]:
        ok, why = super().supports(pattern, dtype, device)
        if ok and not (pattern.n == 2 and pattern.m == 4):
            return False, f"torchao_fp8_24 runs 2:4, not {pattern}"
        return ok, why

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        from torchao.quantization.granularity import PerRow
        from torchao.quantization.quantize_.workflows.float8.float8_sparse_2x4_2d_data_2d_metadata_tensor import (
            Float8Sparse2x4_2DData2DMetadataTensor,
        )
        from torchao.quantization.quantize_.workflows.float8.float8_tensor import QuantizeTensorToFloat8Kwargs

        masked = (weight * mask.to(weight.dtype)).contiguous()
        try:
            return Float8Sparse2x4_2DData2DMetadataTensor.from_hp(
                masked, granularity=PerRow(), act_quant_kwargs=QuantizeTensorToFloat8Kwargs(granularity=PerRow()))
        except (AssertionError, RuntimeError, ValueError) as exc:  # shape / hardware constraints of the CUTLASS kernel
            raise KernelUnsupported(f"torchao float8 2:4: {str(exc).splitlines()[0]}") from None

    def apply(self, packed: Any, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.reshape(-1, x.shape[-1]), packed).reshape(*x.shape[:-1], packed.shape[0])

    def packed_bytes(self, packed: Any) -> int:
        return nbytes(packed.qdata, packed.sparse_metadata, packed.scale)

    def details(self, packed: Any) -> dict[str, Any]:
        return {"backend": "torchao CUTLASS float8 2:4", "weight_dtype": "float8_e4m3fn"}
