"""The run specification and its deterministic hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .patterns import Pattern, Unstructured


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a result. Strings are parsed into these types at the CLI edge."""

    method: str = "magnitude"
    params: Any = None  # the method's frozen Params instance (None = defaults)
    model: str = "llama"
    pattern: Pattern = field(default_factory=Unstructured)
    sparsity: float = 0.5
    suite: str = "quick"
    tasks: tuple[str, ...] | None = None  # None = the suite's tasks
    seed: int = 0
    device: str = "cpu"
    kernels: tuple[str, ...] = ()  # registered kernel names, or "auto" (the fastest per layer shape)
    cache: str = "cold"  # the cache regime of the kernel timings
    latency_dtype: str | None = None  # time the kernels on the model cast to this dtype (None: as loaded)
    # keep the model in CPU memory; calibration moves one block at a time to `device` (a GPU),
    # evaluation runs where the model is. Not hashed: like the device, it does not define the numbers
    offload: bool = False


def params_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


def spec_hash(
    *,
    method: str,
    params: dict[str, Any],
    model: str,
    model_revision: str,
    pattern: str,
    sparsity: float,
    suite: str,
    suite_version: str,
    tasks: tuple[str, ...],
    seed: int,
    kernels: tuple[str, ...] = (),
    hardware: str | None = None,
    cache: str | None = None,
    latency_dtype: str | None = None,
) -> str:
    """sha256 over the canonical JSON of what determines the numbers.

    Device and time are left out (quality does not depend on them), except that a run
    measuring kernel latency includes the hardware, the cache regime and the dtype of its timings.
    """
    payload = {
        "method": method,
        "params": params,
        "model": model,
        "model_revision": model_revision,
        "pattern": pattern,
        "sparsity": round(float(sparsity), 6),
        "suite": suite,
        "suite_version": suite_version,
        "tasks": sorted(tasks),
        "seed": seed,
        "kernels": sorted(kernels),
    }
    if kernels:
        payload["hardware"] = hardware
        # None leaves a field out, so records that do not state it keep their hash
        payload.update({k: v for k, v in (("cache", cache), ("latency_dtype", latency_dtype)) if v is not None})
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
