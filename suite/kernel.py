"""Sparse kernel interface and registry (implementations live in ``kernels/``).

A kernel declares what it supports, says whether it is available here (and why not),
packs a masked weight once and applies it to activations: ``apply(pack(w, mask), x)``
must equal ``x @ (w * mask).T`` within the kernel's stated tolerance, which is checked
before any timing. An unsupported combination is recorded as ``unsupported`` with its
reason and never timed as dense.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .patterns import NM, Block, Pattern, Unstructured
from .registry import Registry


@dataclass(frozen=True)
class Support:
    patterns: tuple[type, ...] = (Unstructured, NM, Block)
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)
    devices: tuple[str, ...] = ("cpu",)


class Kernel(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    support: ClassVar[Support] = Support()
    rtol: ClassVar[float] = 1e-4
    atol: ClassVar[float] = 1e-4

    def available(self, device: torch.device) -> tuple[bool, str]:
        """Whether this kernel can run on ``device`` here, and the reason if not."""
        return True, ""

    def supports(self, pattern: Pattern, dtype: torch.dtype, device: torch.device) -> tuple[bool, str]:
        ok, why = self.available(device)
        if not ok:
            return False, why
        if not isinstance(pattern, self.support.patterns):
            return False, f"{self.name} does not run pattern {pattern}"
        if dtype not in self.support.dtypes:
            return False, f"{self.name} does not run {dtype}"
        if device.type not in self.support.devices:
            return False, f"{self.name} does not run on {device.type}"
        return True, ""

    @abstractmethod
    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> Any:
        """Prepare the masked ``[out, in]`` weight in the kernel's format."""

    @abstractmethod
    def apply(self, packed: Any, x: torch.Tensor) -> torch.Tensor:
        """``x @ (weight * mask).T`` for ``x`` of shape ``[..., in]``."""


kernels: Registry[type[Kernel]] = Registry("kernel", builtins="sparsebench.kernels")
