"""The cache regime of a latency measurement.

``cold``: every timed call finds its weights in memory, as every layer of a model larger
than the cache does. Two ways, both outside the timed region and the same for every kernel,
dense included: an :class:`Evictor` reads a buffer twice the size of the last-level cache
before each call (end-to-end timings: the whole model is cold at the start of each call); a
:class:`Rotation` cycles through that many bytes of copies of one packed layer, so each call
reads a copy last read that many bytes ago while the code and activations stay cached as
they do inside a model (per-layer timings). ``hot``: nothing in between, so a weight that
fits stays cached from the previous call (what calling one layer over and over measures).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from .errors import InvalidSpecError

REGIMES = ("cold", "hot")
FALLBACK_LLC_BYTES = 256 * 2**20  # larger than most servers' per-socket L3, so eviction stays safe
FALLBACK_GPU_L2_BYTES = 128 * 2**20
EVICT_FACTOR = 2  # read this many times the cache size: replacement is not strict LRU


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise InvalidSpecError(f"cache regime must be one of {', '.join(REGIMES)}, got {regime!r}")
    return regime


def _parse_size(text: str) -> int | None:
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2).upper()]


def cpu_llc_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> tuple[int, str]:
    """The last-level cache size of CPU 0 and where it was read: sysfs, sysconf, else a fallback."""
    best: tuple[int, int] | None = None  # (level, bytes)
    for index in sorted(sysfs.glob("index*")) if sysfs.is_dir() else []:
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            size = _parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if size and (best is None or level > best[0]):
            best = (level, size)
    if best:
        return best[1], f"sysfs L{best[0]}"
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError):
            continue
        if size > 0:
            return size, f"sysconf {name}"
    return FALLBACK_LLC_BYTES, "fallback"


def device_cache_bytes(device: torch.device) -> tuple[int, str]:
    """The cache to evict on ``device``: the CPU's last level, or the GPU's L2."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        size = int(getattr(props, "L2_cache_size", 0) or 0)
        return (size, "cuda L2") if size > 0 else (FALLBACK_GPU_L2_BYTES, "fallback")
    return cpu_llc_bytes()


def cold_bytes(device: torch.device | str = "cpu", nbytes: int | None = None) -> tuple[int, str]:
    """Bytes read between two reads of one weight in the cold regime (``nbytes``, else twice the cache), and why."""
    if nbytes is not None:
        if nbytes < 1:
            raise InvalidSpecError(f"the cold regime's byte count must be positive, got {nbytes}")
        return int(nbytes), "given"
    cache, source = device_cache_bytes(torch.device(device))
    return EVICT_FACTOR * cache, source


class Cold(Protocol):
    """Makes the next timed call's weights cold; called before each timed call, outside the timer."""

    def __call__(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class Evictor:
    """Reads (CPU) or overwrites (GPU) a buffer larger than the cache."""

    def __init__(self, device: torch.device | str = "cpu", nbytes: int | None = None):
        self.device = torch.device(device)
        self.nbytes, self.source = cold_bytes(self.device, nbytes)
        self.buffer = torch.ones(max(self.nbytes // 4, 1), dtype=torch.float32, device=self.device)

    def __call__(self) -> None:
        if self.device.type == "cuda":
            self.buffer.zero_()
        else:
            self.buffer.sum()

    def describe(self) -> dict[str, Any]:
        """What was evicted, stored with each cold timing."""
        return {"cold_by": "eviction", "evict_bytes": self.nbytes, "cache_size_from": self.source}


class Rotation:
    """Copies of one packed weight, at least ``nbytes`` of them in all; each call moves to the next copy."""

    def __init__(self, make: Callable[[], Any], bytes_each: int, device: torch.device | str = "cpu", nbytes: int | None = None):
        target, self.source = cold_bytes(device, nbytes)
        n = max(2, math.ceil(target / max(bytes_each, 1)) + 1)
        self.copies: Sequence[Any] = [make() for _ in range(n)]
        self.bytes_each, self.index = bytes_each, 0

    @property
    def current(self) -> Any:
        return self.copies[self.index]

    def __call__(self) -> None:
        self.index = (self.index + 1) % len(self.copies)

    def describe(self) -> dict[str, Any]:
        return {"cold_by": "rotation", "copies": len(self.copies), "rotated_bytes": len(self.copies) * self.bytes_each,
                "cache_size_from": self.source}
