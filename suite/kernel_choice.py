"""``--kernels auto``: the fastest kernel for each distinct prunable-layer shape, measured here.

For each shape the first layer of that shape (its real masked weight) is timed with every
registered kernel that supports the pattern, dtype and device and agrees with dense, on
random activations of the phase's token count, in the run's cache regime (cold: rotating
through copies of the packed layer, as :mod:`sparsebench.microbench` does); the fastest wins
(dense included: where nothing beats it, dense is the choice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .adapters import PrunableLayer
from .errors import SparsebenchError
from .kernel import Kernel, kernels, make_kernel
from .microbench import bench_weight
from .patterns import Pattern
from .timing import TimingConfig

AUTO = "auto"
SHRUNK = "shrunk"  # a structured run's timing: the smaller model with dense matmuls (not a kernel)
UNPRUNED = "unpruned"  # details["model_state"] of a structured run's baseline rows (the model before pruning)
Shape = tuple[int, int]


@dataclass(frozen=True)
class Choice:
    """The kernel chosen for one shape and what it was chosen from."""

    kernel: Kernel
    speedup: float  # vs dense on this layer
    measured: Mapping[str, float | str]  # kernel -> speedup, or its status when it was not timed

    def describe(self) -> dict[str, Any]:
        return {"kernel": self.kernel.name, "speedup": self.speedup, "measured": dict(self.measured)}


def candidates(pattern: Pattern, dtype: torch.dtype, device: torch.device) -> list[Kernel]:
    """Every registered kernel (default parameters) that says it runs this pattern, dtype and device."""
    return [k for k in (make_kernel(n) for n in kernels.list()) if k.supports(pattern, dtype, device)[0]]


def shape_label(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def choose_kernels(layers: Sequence[PrunableLayer], masks: Mapping[str, torch.Tensor], pattern: Pattern, sparsity: float,
                   tokens: int, config: TimingConfig, seed: int = 0) -> dict[Shape, Choice]:
    """The fastest kernel per distinct ``[out, in]`` shape of ``layers`` at ``tokens`` tokens."""
    first: dict[Shape, PrunableLayer] = {}
    for layer in layers:
        first.setdefault(tuple(layer.weight.shape), layer)
    choices = {}
    g = torch.Generator().manual_seed(seed)
    for shape, layer in first.items():
        w = layer.weight.detach()
        mask = masks.get(layer.name)
        mask = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.to(w.device)
        x = torch.randn(tokens, shape[1], generator=g).to(w.device, w.dtype)
        pool = candidates(pattern, w.dtype, w.device)
        common = dict(scope="layer", pattern=str(pattern), sparsity=sparsity, dtype=w.dtype, device=str(w.device), hardware="",
                      shape={"out": shape[0], "in": shape[1], "tokens": tokens})
        rows, _ = bench_weight(w, mask, x, pool, config, common, pattern, sparsity)
        ok = [r for r in rows if r["status"] == "ok"]
        if not ok:
            raise SparsebenchError(f"no kernel ran layer {layer.name} ({shape_label(shape)}); not even dense")
        best = min(ok, key=lambda r: r["median_s"])
        by_name = {k.name: k for k in pool}
        measured = {r["kernel"]: r["speedup"] if r["status"] == "ok" else r["status"] for r in rows}
        choices[shape] = Choice(by_name[best["kernel"]], best["speedup"], measured)
    return choices
