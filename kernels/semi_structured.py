"""``semi_structured``: 2:4 sparse tensor cores via ``torch.sparse.to_sparse_semi_structured``.

Needs a CUDA GPU of compute capability 8.0 or newer. cuSPARSELt runs when PyTorch was
built with it and supports the dtype; otherwise the CUTLASS kernels run. Which one ran is
recorded in the timing's details (``backend``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sparsebench.kernel import Kernel, KernelUnsupported, Support, kernels, nbytes
from sparsebench.patterns import NM, Pattern

MIN_CAPABILITY = (8, 0)


def _cusparselt_available() -> bool:
    backend = getattr(torch.backends, "cusparselt", None)
    return bool(backend is not None and backend.is_available())


@kernels.register("semi_structured", aliases=("semi-structured", "2:4-sparse"))
class SemiStructured(Kernel):
    description = "2:4 semi-structured sparsity on CUDA tensor cores (cuSPARSELt or CUTLASS); sm80+"
    support = Support(patterns=(NM,), dtypes=(torch.float16, torch.bfloat16, torch.float32), devices=("cuda",))
    rtol = 1e-2  # tensor-core arithmetic (float32 runs as TF32 in CUTLASS)
    atol = 1e-2

    def __init__(self, backend: str = "auto"):
        if backend not in ("auto", "cusparselt", "cutlass"):
            raise KernelUnsupported(f"semi_structured backend must be auto, cusparselt or cutlass, got {backend!r}")
        self.backend = backend

    @property
    def params(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def available(self, device: torch.device) -> tuple[bool, str]:
        if device.type != "cuda":
            return False, f"needs a CUDA GPU with compute capability >= {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} (2:4 sparse tensor cores); device is {device.type}"
        if not torch.cuda.is_available():
            return False, "CUDA is not available in this PyTorch build or machine"
        cc = torch.cuda.get_device_capability(device)
        if cc < MIN_CAPABILITY:
            return False, f"compute capability {cc[0]}.{cc[1]} < {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}"
        if self.backend == "cusparselt" and not _cusparselt_available():
            return False, "this PyTorch build has no cuSPARSELt"
        return True, ""

    def supports(self, pattern: Pattern, dtype: torch.dtype, device: torch.device) -> tuple[bool, str]:
        ok, why = super().supports(pattern, dtype, device)
        if ok and not (pattern.m == 4 and pattern.n <= 2):
            return False, f"semi_structured runs 2:4 (or sparser N:4), not {pattern}"
        return ok, why

    def _subclass(self, dtype: torch.dtype) -> type:
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as Cslt
        from torch.sparse import SparseSemiStructuredTensorCUTLASS as Cutlass

        if self.backend == "cutlass":
            return Cutlass
        if _cusparselt_available() and dtype in Cslt._DTYPE_SHAPE_CONSTRAINTS:
            return Cslt
        if self.backend == "cusparselt":
            raise KernelUnsupported(f"cuSPARSELt does not run {dtype}")
        return Cutlass

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        cls = self._subclass(weight.dtype)
        masked = (weight * mask.to(weight.dtype)).contiguous()
        try:
            return cls.from_dense(masked)
        except (RuntimeError, ValueError) as exc:  # shape / dtype constraints of the backend
            raise KernelUnsupported(f"{cls.__name__}: {str(exc).splitlines()[0]}") from None

    def apply(self, packed: Any, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, packed)

    def packed_bytes(self, packed: Any) -> int:
        return nbytes(*(t for t in (packed.packed, packed.meta) if t is not None))  # cuSPARSELt keeps its metadata in packed

    def details(self, packed: Any) -> dict[str, Any]:
        name = type(packed).__name__
        return {"backend": "cuSPARSELt" if name.endswith("CUSPARSELT") else "CUTLASS", "class": name}
