"""Sparse kernel interface and registry (implementations live in ``kernels/``).

A kernel declares what it supports, says whether it is available here (and why not),
packs a masked weight once and applies it to activations: ``apply(pack(w, mask), x)``
must equal ``x @ (w * mask).T`` within the kernel's stated tolerance, which is checked
(:func:`check_against_dense`) before any timing. An unsupported combination is recorded
as ``unsupported`` with its reason and never timed as dense.

Each kernel reports the bytes its packed weight occupies (:meth:`Kernel.packed_bytes`,
counted from the packed arrays themselves), which gives the bytes bound of its format at
one token, where a layer is memory-bound: dense bytes / packed bytes. Kernels with their
own thread pool (numba, MKL) use ``torch.get_num_threads()``, which the timing fixes.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

import torch
from torch import nn

from .errors import SparsebenchError
from .patterns import NM, Block, Pattern, Unstructured
from .registry import Registry


class KernelUnsupported(SparsebenchError):
    """A kernel cannot run this weight (shape, layout, ...); the message is the reason."""


@dataclass(frozen=True)
class Support:
    patterns: tuple[type, ...] = (Unstructured, NM, Block)
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)
    devices: tuple[str, ...] = ("cpu",)
    limits: str = ""  # why the dtypes / devices stop there, appended to the unsupported reason


class Kernel(ABC):
    """A way to compute ``x @ (weight * mask).T``. Subclasses may take keyword parameters."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    support: ClassVar[Support] = Support()
    rtol: ClassVar[float] = 1e-4
    atol: ClassVar[float] = 1e-5

    def available(self, device: torch.device) -> tuple[bool, str]:
        """Whether this kernel can run on ``device`` here, and the reason if not."""
        return True, ""

    def supports(self, pattern: Pattern, dtype: torch.dtype, device: torch.device) -> tuple[bool, str]:
        ok, why = self.available(device)
        if not ok:
            return False, why
        why = f" ({self.support.limits})" if self.support.limits else ""
        if not isinstance(pattern, self.support.patterns):
            return False, f"{self.name} does not run pattern {pattern}"
        if dtype not in self.support.dtypes:
            return False, f"{self.name} does not run {str(dtype).removeprefix('torch.')}{why}"
        if device.type not in self.support.devices:
            return False, f"{self.name} does not run on {device.type}{why}"
        return True, ""

    @abstractmethod
    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        """Prepare the masked ``[out, in]`` weight in the kernel's format.

        Raises :class:`KernelUnsupported` when this particular weight cannot be packed.
        """

    @abstractmethod
    def apply(self, packed: Any, x: torch.Tensor) -> torch.Tensor:
        """``x @ (weight * mask).T`` for ``x`` of shape ``[..., in]``."""

    def copy_packed(self, packed: Any, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        """Another copy of ``packed`` in its own memory (for rotating through copies); kernels with a cheap copy override this."""
        return self.pack(weight, mask)

    @abstractmethod
    def packed_bytes(self, packed: Any) -> int:
        """Bytes of weight data one call reads: values, indices, row pointers, bitmaps (see :func:`nbytes`)."""

    def tolerance(self, dtype: torch.dtype) -> tuple[float, float]:
        """(rtol, atol) for outputs in ``dtype``: the class's for float32, at least 1e-2 for 16-bit."""
        if dtype in (torch.float16, torch.bfloat16):
            return max(self.rtol, 1e-2), max(self.atol, 1e-2)
        return self.rtol, self.atol

    def details(self, packed: Any) -> dict[str, Any]:
        """What actually ran (backend, block size, nnz ...), stored with each timing."""
        return {}

    @property
    def params(self) -> dict[str, Any]:
        """The keyword parameters this instance was built with (recorded with timings)."""
        return {}


kernels: Registry[type[Kernel]] = Registry("kernel", builtins="sparsebench.kernels")


def make_kernel(name: str, **params: Any) -> Kernel:
    """An instance of the registered kernel ``name`` (parameters it does not take are ignored)."""
    cls = kernels.get(name)
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in params.items() if k in accepted})


def ideal_speedup(pattern: Pattern, sparsity: float) -> float | None:
    """The FLOP ideal: the work shrinks by ``1 - s`` (2x for 2:4); index bytes not counted."""
    if isinstance(pattern, NM):
        return pattern.m / pattern.n
    return 1.0 / (1.0 - sparsity) if sparsity < 1.0 else None


def nbytes(*arrays: Any) -> int:
    """Total bytes of torch tensors and numpy arrays (a sparse torch tensor counts its index and value arrays)."""
    total = 0
    for a in arrays:
        if isinstance(a, torch.Tensor) and a.layout in (torch.sparse_csr, torch.sparse_bsr):
            total += nbytes(a.crow_indices(), a.col_indices(), a.values())
        elif isinstance(a, torch.Tensor):
            total += a.numel() * a.element_size()
        elif isinstance(a, np.ndarray):
            total += a.nbytes
        else:
            raise TypeError(f"cannot count the bytes of {type(a).__name__}")
    return total


@dataclass(frozen=True)
class Bounds:
    """The limits a measured speedup is compared with, for one packed weight."""

    flop_ideal: float | None  # 1/(1-s): what skipping every zero's work would give
    dense_bytes: int  # the dense weight in its dtype
    packed_bytes: int  # what the kernel's format reads

    @property
    def bytes_bound(self) -> float:
        """Speedup at one token if the call is memory-bound: dense bytes / packed bytes."""
        return self.dense_bytes / self.packed_bytes

    def share(self, speedup: float | None) -> float | None:
        """The fraction of the bytes bound a measured speedup reaches."""
        return None if speedup is None else speedup / self.bytes_bound

    def as_details(self, speedup: float | None = None) -> dict[str, Any]:
        share = self.share(speedup)
        return {"dense_bytes": self.dense_bytes, "packed_bytes": self.packed_bytes, "bytes_bound": self.bytes_bound,
                **({"bytes_bound_share": share} if share is not None else {})}


def bounds(kernel: Kernel, packed: Any, pattern: Pattern, sparsity: float, shape: tuple[int, int], dtype: torch.dtype) -> Bounds:
    dense = shape[0] * shape[1] * torch.empty((), dtype=dtype).element_size()
    return Bounds(ideal_speedup(pattern, sparsity), dense, kernel.packed_bytes(packed))


@dataclass(frozen=True)
class Check:
    """The outcome of comparing a kernel with dense on one input."""

    ok: bool
    max_abs_error: float
    reason: str = ""


def check_against_dense(kernel: Kernel, packed: Any, masked_weight: torch.Tensor, x: torch.Tensor, rtol_scale: float = 1.0) -> Check:
    """``allclose(apply(packed, x), F.linear(x, masked_weight))`` at the kernel's tolerance.

    The reference is computed in float64 so the check measures the kernel's own error.
    """
    with torch.no_grad():
        out = kernel.apply(packed, x)
        ref = torch.nn.functional.linear(x.double(), masked_weight.double())
    if out.shape != ref.shape:
        return Check(False, float("inf"), f"{kernel.name} returned shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
    out = out.double()
    err = float((out - ref).abs().max()) if out.numel() else 0.0
    rtol, atol = kernel.tolerance(x.dtype)
    rtol, atol = rtol * rtol_scale, atol * rtol_scale
    if not torch.allclose(out, ref, rtol=rtol, atol=atol):
        return Check(False, err, f"{kernel.name} differs from dense: max abs error {err:.3g} (rtol={rtol:g}, atol={atol:g})")
    return Check(True, err)


class SparseLinear(nn.Module):
    """A drop-in for a prunable linear layer: ``kernel.apply(packed, x) + bias``."""

    def __init__(self, kernel: Kernel, packed: Any, bias: torch.Tensor | None, in_features: int, out_features: int):
        super().__init__()
        self.kernel, self.packed = kernel, packed
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.kernel.apply(self.packed, x)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"kernel={self.kernel.name}, in_features={self.in_features}, out_features={self.out_features}"
