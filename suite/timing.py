"""The one timing function: every latency sparsebench reports comes from :func:`measure`.

Warm-up calls first, then timed calls until there have been at least ``min_iters`` of them
*and* at least ``min_time_s`` seconds of timed work. Each call is timed on its own - CUDA
events bracketing the call and a synchronize on GPU, ``time.perf_counter`` on CPU - so the
result is a distribution: median with p10/p90. The CPU thread count is fixed for the whole
measurement and recorded. (``torch.utils.benchmark`` times blocks of calls and reports
block means; per-call samples are needed here for honest percentiles, so the loop is ours.)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import InvalidSpecError


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 2
    min_iters: int = 10
    min_time_s: float = 0.2
    max_iters: int = 100_000  # a safety stop for sub-microsecond calls
    threads: int | None = None  # None: the current torch.get_num_threads()

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_iters < 1 or self.min_time_s < 0 or self.max_iters < self.min_iters:
            raise InvalidSpecError(f"invalid timing config {self}")


QUICK = TimingConfig(warmup=1, min_iters=3, min_time_s=0.05)


@dataclass(frozen=True)
class Timing:
    """Per-call seconds and their summary."""

    samples: tuple[float, ...]
    threads: int
    device: str
    clock: str  # "perf_counter" | "cuda-events"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile ``q`` in [0, 1] of the samples."""
        s = sorted(self.samples)
        if len(s) == 1:
            return s[0]
        pos = q * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    @property
    def p10(self) -> float:
        return self.quantile(0.10)

    @property
    def p90(self) -> float:
        return self.quantile(0.90)

    @property
    def total(self) -> float:
        return sum(self.samples)


class _threads:
    """Fix torch's intra-op thread count inside the block, restore it after."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self) -> int:
        self.before = torch.get_num_threads()
        if self.n is not None and self.n != self.before:
            torch.set_num_threads(self.n)
        return torch.get_num_threads()

    def __exit__(self, *exc: object) -> None:
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)


def measure(
    fn: Callable[..., Any],
    config: TimingConfig = TimingConfig(),
    device: torch.device | str = "cpu",
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn()`` (or ``fn(setup())`` with an untimed ``setup`` before every call)."""
    device = torch.device(device)
    cuda = device.type == "cuda"

    def call() -> float:
        arg = setup() if setup is not None else None
        args = () if setup is None else (arg,)
        if cuda:
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(*args)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t0

    with _threads(config.threads) as threads, torch.inference_mode():
        for _ in range(config.warmup):
            call()
        samples: list[float] = []
        elapsed = 0.0
        while len(samples) < config.max_iters and (len(samples) < config.min_iters or elapsed < config.min_time_s):
            dt = call()
            samples.append(dt)
            elapsed += dt
    return Timing(tuple(samples), threads, str(device), "cuda-events" if cuda else "perf_counter")
