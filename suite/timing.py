"""The one timing function: every latency sparsebench reports comes from :func:`measure`.

Warm-up calls first, then timed calls until there have been at least ``min_iters`` of them
*and* at least ``min_time_s`` seconds of timed work (cold regime: of wall time, evictions
included, so that microsecond calls do not need thousands of evictions). Each call is timed on its own - CUDA
events bracketing the call and a synchronize on GPU, ``time.perf_counter`` on CPU - so the
result is a distribution: median with p10/p90. The CPU thread count is fixed for the whole
measurement and recorded. In the ``cold`` cache regime (the default, see
:mod:`sparsebench.cache`) the last-level cache is evicted before every timed call, after
``setup`` and outside the timed region; ``hot`` leaves the cache as the previous call left
it. (``torch.utils.benchmark`` times blocks of calls and reports block means; per-call
samples are needed here for honest percentiles, so the loop is ours.)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .cache import Cold, Evictor, check_regime
from .errors import InvalidSpecError


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 2
    min_iters: int = 10
    min_time_s: float = 0.2
    max_iters: int = 100_000  # a safety stop for sub-microsecond calls
    threads: int | None = None  # None: the current torch.get_num_threads()
    cache: str = "cold"  # "cold": weights come from memory on every call; "hot": left cached
    evict_bytes: int | None = None  # cold: bytes read between two reads of a weight [default: 2x the last-level cache]

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_iters < 1 or self.min_time_s < 0 or self.max_iters < self.min_iters:
            raise InvalidSpecError(f"invalid timing config {self}")
        check_regime(self.cache)
        if self.threads is not None and self.threads < 1:
            raise InvalidSpecError(f"threads must be >= 1, got {self.threads}")


QUICK = TimingConfig(warmup=1, min_iters=3, min_time_s=0.05)


@dataclass(frozen=True)
class Timing:
    """Per-call seconds and their summary."""

    samples: tuple[float, ...]
    threads: int
    device: str
    clock: str  # "perf_counter" | "cuda-events"
    cache: str = "hot"
    extra: dict[str, Any] = field(default_factory=dict)  # cold: what was evicted

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


def pooled(timings: Sequence[Timing]) -> Timing:
    """One timing of the samples of several measurements of the same call (interleaved rounds).

    Its percentiles then include the drift between rounds, not only the spread within one.
    """
    if not timings:
        raise ValueError("pooled() needs at least one timing")
    first = timings[0]
    return Timing(tuple(s for t in timings for s in t.samples), first.threads, first.device, first.clock, first.cache,
                  {**first.extra, "rounds": len(timings)})


def speedup_range(dense: tuple[float, float], sparse: tuple[float, float]) -> tuple[float, float]:
    """The spread of a speedup (dense median / sparse median) over the calls timed: from dense p10 /
    sparse p90 (the slowest sparse calls against the fastest dense ones) to dense p90 / sparse p10.

    ``dense`` and ``sparse`` are (p10, p90) in seconds. A range that holds 1.0 says the two were
    not told apart on this machine, whatever the median ratio says."""
    (d10, d90), (s10, s90) = dense, sparse
    if not all(math.isfinite(v) and v > 0 for v in (d10, d90, s10, s90)) or d10 > d90 or s10 > s90:
        raise ValueError(f"speedup_range needs positive p10 <= p90, got dense {dense} and sparse {sparse}")
    return d10 / s90, d90 / s10


def interleaved_order(n: int, rounds: int) -> Iterator[int]:
    """Indices ``0..n-1`` once per round, every other round reversed (a, b, c; c, b, a; ...), so
    that drift during a measurement hits everything measured alike."""
    for r in range(rounds):
        yield from (reversed(range(n)) if r % 2 else range(n))


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
    evictor: Cold | None = None,
) -> Timing:
    """Time ``fn()`` (or ``fn(setup())`` with an untimed ``setup`` before every call).

    In the cold regime ``evictor`` runs before each timed call: an :class:`~sparsebench.cache.Evictor`
    (callers that measure many things pass one, so its buffer is allocated once; otherwise one
    is made here) or a :class:`~sparsebench.cache.Rotation` that ``fn`` reads its weight from.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if config.cache == "cold" and evictor is None:
        evictor = Evictor(device, config.evict_bytes)
    evict = evictor if config.cache == "cold" else None

    def call(timed: bool = True) -> float:
        arg = setup() if setup is not None else None
        args = () if setup is None else (arg,)
        if evict is not None and timed:
            evict()
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
            call(timed=False)
        samples: list[float] = []
        elapsed = 0.0  # timed seconds; cold: wall seconds, evictions included, so the loop ends
        start = time.perf_counter()
        while len(samples) < config.max_iters and (len(samples) < config.min_iters or elapsed < config.min_time_s):
            dt = call()
            samples.append(dt)
            elapsed = time.perf_counter() - start if evict is not None else elapsed + dt
    return Timing(tuple(samples), threads, str(device), "cuda-events" if cuda else "perf_counter", config.cache,
                  evict.describe() if evict is not None else {})
