"""Per-layer kernel microbenchmarks: the grid of real LLM shapes and one case's measurement.

Shared by ``sparsebench bench-kernels`` and the pytest-benchmark suite in ``benchmarks/``.
Each case times dense and every kernel on the same inputs in the same process, in
``ROUNDS`` interleaved rounds (dense, a, b; b, a, dense; ...) whose samples are pooled, so
every ratio is measured, never assumed, and drift within the process hits every kernel alike. A kernel that cannot run the case yields an
``unsupported`` row with the reason; one whose output differs from dense yields ``failed``;
neither is timed. Every row records the cache regime and, beside the speedup, the FLOP ideal
and the bytes bound of the kernel's packed format (see :class:`~sparsebench.kernel.Bounds`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .cache import Rotation
from .errors import InvalidSpecError
from .kernel import Bounds, Kernel, KernelUnsupported, bounds, check_against_dense, ideal_speedup, make_kernel
from .masks import select_mask
from .patterns import NM, Block, Pattern, Unstructured, parse_pattern
from .timing import Timing, TimingConfig, interleaved_order, measure, pooled

# [out, in] of real linear layers.
SHAPES: dict[str, str] = {
    "4096x4096": "Llama-2-7B q/k/v/o_proj",
    "11008x4096": "Llama-2-7B gate/up_proj",
    "4096x11008": "Llama-2-7B down_proj",
    "576x576": "SmolLM2-135M q/o_proj",
    "192x576": "SmolLM2-135M k/v_proj",
    "1536x576": "SmolLM2-135M gate/up_proj",
    "576x1536": "SmolLM2-135M down_proj",
}
TOKENS = (1, 16, 128, 2048)
SPARSITIES = (0.5, 0.7, 0.9, 0.95)
QUICK_TOKENS = (1, 128)
CHECK_TOKENS = 16  # correctness is checked on the first rows of the input
ROUNDS = 3  # interleaved rounds per case; each warms every kernel up once and times it for 1/ROUNDS of the config's calls and seconds


def default_patterns(block: int = 16) -> tuple[Pattern, ...]:
    return (Unstructured(), Block(block, block), NM(2, 4))


@dataclass(frozen=True)
class Grid:
    """A named set of cases and regimes for ``bench-kernels --grid`` (options given override it)."""

    description: str
    shapes: tuple[str, ...]
    tokens: tuple[int, ...]
    sparsities: tuple[float, ...]
    patterns: tuple[str, ...] | None  # None: default_patterns(--block-size)
    dtypes: tuple[str, ...] = ("float32",)
    caches: tuple[str, ...] = ("cold",)
    threads: int | None = None  # None: every available core


GRIDS: dict[str, Grid] = {
    "default": Grid("every shape, token count and sparsity; float32, cold", tuple(SHAPES), TOKENS, SPARSITIES, None),
    "limits": Grid("Llama-2-7B q/k/v/o and gate/up layers, 1 thread, cold and hot, float32 and bfloat16, unstructured",
                   ("4096x4096", "11008x4096"), (1, 16, 128), SPARSITIES, ("unstructured",),
                   ("float32", "bfloat16"), ("cold", "hot"), threads=1),
}


def grid_patterns(names: Iterable[str] | None, block: int) -> list[Pattern]:
    return [parse_pattern(p) for p in names] if names else list(default_patterns(block))


def parse_shape(text: str) -> tuple[int, int]:
    """``"OUTxIN"`` -> ``(out, in)``."""
    out, sep, inp = text.lower().partition("x")
    if not sep or not out.strip().isdigit() or not inp.strip().isdigit() or int(out) < 1 or int(inp) < 1:
        raise InvalidSpecError(f"shape must be OUTxIN with positive integers (e.g. 4096x11008), got {text!r}")
    return int(out), int(inp)


@dataclass(frozen=True)
class Case:
    out: int
    inp: int
    tokens: int
    pattern: Pattern
    sparsity: float
    dtype: torch.dtype = torch.float32
    device: str = "cpu"

    @property
    def shape(self) -> dict[str, Any]:
        label = SHAPES.get(f"{self.out}x{self.inp}")
        return {"out": self.out, "in": self.inp, "tokens": self.tokens, **({"layer": label} if label else {})}

    @property
    def name(self) -> str:
        return f"{self.out}x{self.inp}-t{self.tokens}-{self.pattern}-s{self.sparsity:g}"


def grid(shapes: Iterable[str], tokens: Iterable[int], sparsities: Iterable[float], patterns: Iterable[Pattern],
         dtype: torch.dtype = torch.float32, device: str = "cpu") -> list[Case]:
    """Every combination; a pattern that implies its own sparsity (2:4) appears only at that sparsity,
    and a block pattern only on shapes its tiles divide."""
    cases = []
    for shape in shapes:
        out, inp = parse_shape(shape)
        for p in patterns:
            if isinstance(p, Block) and (out % p.rows or inp % p.cols):
                continue
            if isinstance(p, NM) and inp % p.m:
                continue
            for s in sparsities:
                implied = p.implied_sparsity
                if implied is not None and not math.isclose(implied, s):
                    continue
                cases.extend(Case(out, inp, t, p, float(s), dtype, device) for t in tokens)
    return cases


def make_inputs(case: Case, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight, mask, x): weight ~ N(0, 1/in) as at initialisation, a random mask of the pattern, x ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(case.out, case.inp, generator=g) / math.sqrt(case.inp)
    mask = select_mask(torch.rand(case.out, case.inp, generator=g), case.pattern, case.sparsity)
    x = torch.randn(case.tokens, case.inp, generator=g)
    dev = torch.device(case.device)
    return w.to(dev, case.dtype), mask.to(dev), x.to(dev, case.dtype)


def timing_row(kernel: str, status: str, *, scope: str, pattern: str, sparsity: float, dtype: torch.dtype,
               device: str, hardware: str, shape: dict[str, Any], cache: str, reason: str | None = None,
               timing: Timing | None = None, dense: Timing | None = None, ideal: float | None = None,
               max_abs_error: float | None = None, limits: Bounds | None = None, threads: int | None = None,
               params: dict[str, Any] | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``TimingRow`` as a dict (without ``created_at``/``run_id``); speedup = dense median / median.

    ``details`` always holds the cache regime (``cache``) and, when the packed weight is known,
    its bytes and bytes bound (``limits``) with the share of that bound the speedup reaches.
    """
    median = timing.median if timing else None
    dense_median = dense.median if dense else None
    speedup = (dense_median / median) if median and dense_median else None
    return dict(
        scope=scope, kernel=kernel, status=status, reason=reason, pattern=pattern, sparsity=float(sparsity),
        dtype=str(dtype).removeprefix("torch."), device=device, hardware=hardware, shape=shape,
        median_s=median, p10_s=timing.p10 if timing else None, p90_s=timing.p90 if timing else None,
        iterations=timing.iterations if timing else None, dense_median_s=dense_median,
        speedup=speedup, ideal_speedup=ideal, max_abs_error=max_abs_error,
        threads=timing.threads if timing else threads,
        details={**({"params": params} if params is not None else {}), "cache": cache,
                 **(limits.as_details(speedup) if limits else {}), **(details or {}),
                 **({"clock": timing.clock, **timing.extra} if timing else {})},
    )


def _timer(kernel: Kernel, packed: Any, w: torch.Tensor, mask: torch.Tensor, x: torch.Tensor, config: TimingConfig) -> Callable[[], Timing]:
    """A function that measures one round of one kernel; cold: rotating through copies of its
    packed weight (see :mod:`sparsebench.cache`), made once for all rounds."""
    if config.cache == "hot":
        return lambda: measure(lambda: kernel.apply(packed, x), config, x.device)
    rotation = Rotation(lambda: kernel.copy_packed(packed, w, mask), kernel.packed_bytes(packed), x.device, config.evict_bytes)
    return lambda: measure(lambda: kernel.apply(rotation.current, x), config, x.device, evictor=rotation)


def interleaved(timers: Mapping[str, Callable[[], Timing]], rounds: int = ROUNDS) -> dict[str, Timing]:
    """Each timer's rounds pooled (:func:`~sparsebench.timing.pooled`), run in
    :func:`~sparsebench.timing.interleaved_order`."""
    names, samples = list(timers), {name: [] for name in timers}
    for i in interleaved_order(len(names), rounds):
        samples[names[i]].append(timers[names[i]]())
    return {name: pooled(ts) for name, ts in samples.items()}


def bench_weight(w: torch.Tensor, mask: torch.Tensor, x: torch.Tensor, kernel_list: Sequence[Kernel], config: TimingConfig,
                 common: dict[str, Any], pattern: Pattern, sparsity: float, dense: Timing | None = None,
                 rounds: int = ROUNDS) -> tuple[list[dict[str, Any]], Timing]:
    """Rows for each kernel on one masked weight and input (``dense`` measured here unless given), and dense's timing.

    A kernel is timed only if it supports the case, packs it and agrees with dense; otherwise
    its row says ``unsupported`` or ``failed`` with the reason. The kernels that run, dense
    first, are timed in ``rounds`` interleaved rounds (:func:`interleaved`).
    """
    device = x.device
    masked = w * mask.to(w.dtype)
    common = {**common, "cache": config.cache, "threads": config.threads}
    per_round = replace(config, warmup=min(config.warmup, 1), min_iters=max(1, math.ceil(config.min_iters / rounds)),
                        min_time_s=config.min_time_s / rounds)
    baseline = make_kernel("dense")
    timers = {} if dense is not None else {"dense": _timer(baseline, baseline.pack(w, mask), w, mask, x, per_round)}
    rows: list[dict[str, Any] | None] = []
    ready: dict[int, tuple[Kernel, Any, Bounds, float]] = {}  # row index -> what its "ok" row needs
    for k in kernel_list:
        common["params"] = k.params
        ok, why = k.supports(pattern, x.dtype, device)
        if not ok:
            rows.append(timing_row(k.name, "unsupported", reason=why, **common))
            continue
        try:
            packed = k.pack(w, mask)
        except KernelUnsupported as exc:
            rows.append(timing_row(k.name, "unsupported", reason=str(exc), **common))
            continue
        limits = bounds(k, packed, pattern, sparsity, tuple(w.shape), w.dtype)
        check = check_against_dense(k, packed, masked, x[:CHECK_TOKENS])
        if not check.ok:
            rows.append(timing_row(k.name, "failed", reason=check.reason, max_abs_error=check.max_abs_error, limits=limits, **common))
            continue
        if k.name != "dense":
            timers[k.name] = _timer(k, packed, w, mask, x, per_round)
        ready[len(rows)] = (k, packed, limits, check.max_abs_error)
        rows.append(None)
    timed = interleaved(timers, rounds)
    dense = dense if dense is not None else timed["dense"]
    for i, (k, packed, limits, error) in ready.items():
        rows[i] = timing_row(k.name, "ok", timing=timed.get(k.name, dense), dense=dense, max_abs_error=error, limits=limits,
                             details=k.details(packed), **{**common, "params": k.params})
    return [r for r in rows if r is not None], dense


def bench_case(case: Case, kernel_list: Sequence[Kernel], config: TimingConfig, hardware: str, seed: int = 0,
               dense_cache: dict[tuple[Case, str], Timing] | None = None) -> list[dict[str, Any]]:
    """Time dense and each kernel, interleaved, on one case; one row per kernel (dense included if listed).

    ``dense_cache`` lets callers that bench one kernel at a time (pytest-benchmark) measure
    dense once per case and cache regime in the process.
    """
    w, mask, x = make_inputs(case, seed)
    common = dict(scope="layer", pattern=str(case.pattern), sparsity=case.sparsity, dtype=case.dtype,
                  device=str(x.device), hardware=hardware, shape=case.shape, ideal=ideal_speedup(case.pattern, case.sparsity))
    key = (case, config.cache)
    rows, dense = bench_weight(w, mask, x, kernel_list, config, common, case.pattern, case.sparsity,
                               dense=dense_cache.get(key) if dense_cache is not None else None)
    if dense_cache is not None:
        dense_cache[key] = dense
    return rows


def case_id(case: Case, cache: str, hardware: str, threads: int) -> tuple:
    """What a measured case is: shape, tokens, pattern, sparsity, dtype, cache regime, machine, threads."""
    return (case.out, case.inp, case.tokens, str(case.pattern), float(case.sparsity), str(case.dtype).removeprefix("torch."), cache,
            hardware, threads)


def row_case_id(row: Mapping[str, Any]) -> tuple:
    """:func:`case_id` of the case a timing row was measured on."""
    shape = row["shape"]
    return (shape["out"], shape["in"], shape["tokens"], row["pattern"], float(row["sparsity"]), row["dtype"], row["details"]["cache"],
            row["hardware"], row["threads"])


def rows_from_json(path: str | Path) -> list[dict[str, Any]]:
    """The timing rows in ``bench-kernels --json FILE`` output or a pytest-benchmark ``--benchmark-json`` file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidSpecError(f"cannot read JSON {path}: {exc}") from None
    if isinstance(data, dict) and "timing_rows" in data:
        rows = data["timing_rows"]
    elif isinstance(data, dict) and "benchmarks" in data:
        rows = [b.get("extra_info", {}).get("timing_row") for b in data["benchmarks"]]
    else:
        raise InvalidSpecError(f"{path} is neither bench-kernels --json output nor a pytest-benchmark JSON file")
    rows = [r for r in rows if r]
    if not rows:
        raise InvalidSpecError(f"{path} has no sparsebench timing rows")
    return rows
