"""The cache regime of a latency measurement.

``cold``: before every timed call, a buffer twice the size of the last-level cache is read,
so the call finds its weights in memory, as every layer of a model larger than the cache
does. ``hot``: nothing in between, so a weight that fits stays cached from the previous call
(what calling one layer over and over measures). The eviction runs outside the timed region
and is the same for every kernel, dense included.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


class Evictor:
    """Reads (CPU) or overwrites (GPU) a buffer larger than the cache; call it between timed calls."""

    def __init__(self, device: torch.device | str = "cpu", nbytes: int | None = None):
        self.device = torch.device(device)
        cache, self.source = device_cache_bytes(self.device)
        self.nbytes = int(nbytes) if nbytes else EVICT_FACTOR * cache
        if self.nbytes < 1:
            raise InvalidSpecError(f"eviction buffer must be positive, got {self.nbytes} bytes")
        self.buffer = torch.ones(max(self.nbytes // 4, 1), dtype=torch.float32, device=self.device)

    def __call__(self) -> None:
        if self.device.type == "cuda":
            self.buffer.zero_()
        else:
            self.buffer.sum()

    def describe(self) -> dict[str, object]:
        """What was evicted, stored with each cold timing."""
        return {"evict_bytes": self.nbytes, "cache_size_from": self.source}
