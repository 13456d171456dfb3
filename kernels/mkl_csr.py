"""``mkl_csr``: Intel MKL's sparse BLAS through ``sparse-dot-mkl`` (``pip install sparsebench[mkl]``).

The ``mkl`` wheel puts ``libmkl_rt`` in the environment's ``lib/`` folder, which the dynamic
loader does not search; ``sparse-dot-mkl`` reads its location from ``$MKL_RT``, so that is
set to the environment's copy when it exists and ``$MKL_RT`` is unset. MKL runs as many
threads as ``torch.get_num_threads()`` (set per call, thread-locally).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from sparsebench.kernel import Kernel, Support, kernels, nbytes


@functools.cache
def _sparse_dot_mkl() -> tuple[ModuleType | None, str]:
    """The ``sparse_dot_mkl`` module, or None and why it cannot be imported."""
    if "MKL_RT" not in os.environ:
        found = sorted(Path(sys.prefix, "lib").glob("libmkl_rt.so*"))
        if found:
            os.environ["MKL_RT"] = str(found[0])
    try:
        import sparse_dot_mkl
    except ImportError as exc:
        return None, f"MKL not importable (pip install 'sparsebench[mkl]'): {str(exc).splitlines()[0][:160]}"
    return sparse_dot_mkl, ""


@kernels.register("mkl_csr", aliases=("mkl",))
class MKLCSR(Kernel):
    description = "Intel MKL sparse BLAS CSR via sparse-dot-mkl, CPU, torch's thread count; any mask"
    support = Support(dtypes=(torch.float32,), devices=("cpu",), limits="MKL's sparse BLAS runs float32 and float64 only")

    def available(self, device: torch.device) -> tuple[bool, str]:
        module, why = _sparse_dot_mkl()
        return module is not None, why

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        import scipy.sparse

        return scipy.sparse.csr_matrix((weight * mask.to(weight.dtype)).detach().cpu().numpy())  # int32 indices where they fit

    def apply(self, packed: Any, x: torch.Tensor) -> torch.Tensor:
        module, _ = _sparse_dot_mkl()
        module.mkl_set_num_threads_local(torch.get_num_threads())
        x2 = x.detach().reshape(-1, x.shape[-1]).numpy()
        y = module.dot_product_mkl(packed, x2[0]) if x2.shape[0] == 1 else module.dot_product_mkl(packed, x2.T).T
        return torch.from_numpy(np.ascontiguousarray(y).reshape(*x.shape[:-1], packed.shape[0]))

    def copy_packed(self, packed: Any, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        return packed.copy()

    def packed_bytes(self, packed: Any) -> int:
        return nbytes(packed.data, packed.indices, packed.indptr)

    def details(self, packed: Any) -> dict[str, Any]:
        return {"nnz": int(packed.nnz)}
