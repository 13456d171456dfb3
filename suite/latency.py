"""End-to-end latency of a pruned model with each kernel swapped into every prunable layer.

For each kernel, every prunable linear (found by the adapter) is replaced by a
:class:`~sparsebench.kernel.SparseLinear` holding the packed masked weight; the logits on
a fixed prompt are checked against the masked-dense model; then prefill latency and decode
latency per token are measured with :func:`sparsebench.timing.measure`, and the original
modules are put back. ``dense`` is always measured, in the same process, and every speedup is
relative to it (its rows are returned even when not requested: they are the baseline). Two
rows per kernel are returned (``scope`` ``prefill`` and ``decode``).

Measurements are interleaved: ``E2EConfig.rounds`` rounds each time every kernel once, in
alternating order (dense, a, b; then b, a, dense; ...), and each row pools its rounds'
samples. A drift of the machine's speed during the measurement (another process, the clock,
the hypervisor) then lands on every kernel alike instead of on whichever was measured during
it, and the pooled p10/p90 show the drift that remains.

The cache regime is the timing's (cold by default: the cache is evicted before every
prefill and before every decoded token). ``auto`` is not one kernel: per distinct layer
shape the fastest kernel at the phase's token count is measured and used
(:mod:`sparsebench.kernel_choice`); the choice per shape is in the rows' ``details``.

A structured run has no masks to pack: :func:`shrunk_timings` times the unpruned model (the
baseline, kept in memory while the method runs) and the smaller model the same way, so the
speedup is what removing the units buys with ordinary dense matmuls.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from . import provenance
from .adapters import LanguageModelAdapter, PrunableLayer
from .cache import Evictor
from .errors import InvalidSpecError
from .kernel import Kernel, KernelUnsupported, SparseLinear, ideal_speedup, make_kernel, nbytes
from .kernel import kernels as kernel_registry
from .kernel_choice import AUTO, SHRUNK, UNPRUNED, Choice, choose_kernels, shape_label
from .microbench import timing_row
from .models import LoadedModel
from .patterns import Pattern
from .timing import Timing, TimingConfig, interleaved_order, measure, pooled

# Rounding differences add up over depth: the logits check allows this multiple of the
# kernel's per-layer tolerance.
LOGITS_TOLERANCE_SCALE = 100.0


@dataclass(frozen=True)
class E2EConfig:
    prefill_tokens: int = 128
    decode_context: int = 16
    decode_tokens: int = 16  # tokens decoded from one context before it is rebuilt; each token is one timed call
    seed: int = 0
    rounds: int = 4  # interleaved rounds; ``timing`` is one round's measurement of one kernel and scope
    timing: TimingConfig = field(default_factory=lambda: TimingConfig(warmup=1, min_iters=2, min_time_s=0.5))
    # per-layer timings that choose the kernels of ``auto`` (the cache regime is ``timing``'s)
    choice_timing: TimingConfig = field(default_factory=lambda: TimingConfig(warmup=1, min_iters=5, min_time_s=0.2))

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise InvalidSpecError(f"latency rounds must be >= 1, got {self.rounds}")


@dataclass
class Swap:
    """What a swap packed: the first layer's details (what ran) and the bytes of all layers."""

    details: dict[str, Any] = field(default_factory=dict)
    dense_bytes: int = 0
    packed_bytes: int = 0


@contextmanager
def swapped(model: nn.Module, layers: Sequence[PrunableLayer], kernel_for: Callable[[PrunableLayer], Kernel],
            masks: Mapping[str, torch.Tensor]) -> Iterator[Swap]:
    """Replace each layer by the module of ``kernel_for(layer)`` inside the block; always restore the originals.

    Raises :class:`KernelUnsupported`.
    """
    originals: list[tuple[nn.Module, str, nn.Module]] = []
    swap = Swap()
    try:
        for layer in layers:
            if not layer.is_linear:
                raise KernelUnsupported(f"{layer.name} is a {type(layer.module).__name__}; kernels replace linear layers only")
            kernel = kernel_for(layer)
            w = layer.weight.detach()
            mask = masks.get(layer.name)
            mask = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.to(w.device)
            packed = kernel.pack(w, mask)
            swap.details = swap.details or kernel.details(packed)
            swap.dense_bytes += nbytes(w)
            swap.packed_bytes += kernel.packed_bytes(packed)
            out_f, in_f = w.shape
            parent_name, _, child = layer.name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            originals.append((parent, child, layer.module))
            setattr(parent, child, SparseLinear(kernel, packed, getattr(layer.module, "bias", None), in_f, out_f))
        yield swap
    finally:
        for parent, child, module in reversed(originals):
            setattr(parent, child, module)


def _amdahl_ideal(head_parameters: int, layers: Sequence[PrunableLayer], pattern: Pattern, sparsity: float) -> tuple[float | None, float]:
    """Ideal whole-model speedup if only the prunable weights shrink (the LM head does not)."""
    pruned = sum(layer.weight.numel() for layer in layers)
    other = head_parameters
    share = pruned / (pruned + other) if pruned + other else 0.0
    layer_ideal = ideal_speedup(pattern, sparsity)
    if layer_ideal is None:
        return None, share
    return 1.0 / ((1.0 - share) + share / layer_ideal), share


def _bytes_bound(swap: Swap, share: float) -> dict[str, float]:
    """The whole model's bytes bound at one token: the other weights (the LM head) are read in full either way."""
    if not swap.packed_bytes or not share:
        return {}
    other = swap.dense_bytes * (1.0 - share) / share
    return {"bytes_bound": (swap.dense_bytes + other) / (swap.packed_bytes + other), "packed_bytes": swap.packed_bytes,
            "dense_bytes": swap.dense_bytes}


class _Decoder:
    """Greedy decoding one token per call, from a context rebuilt (in ``setup``, untimed) every ``tokens`` calls."""

    def __init__(self, adapter: LanguageModelAdapter, model: nn.Module, context: torch.Tensor, tokens: int):
        self.adapter, self.model, self.context, self.tokens = adapter, model, context, tokens
        self.state: tuple[Any, torch.Tensor] | None = None
        self.done = 0

    def setup(self) -> tuple[Any, torch.Tensor]:
        if self.state is None or self.done >= self.tokens:
            logits, cache = self.adapter.decode(self.model, self.context)
            self.state, self.done = (cache, logits[:, -1:].argmax(-1)), 0
        return self.state

    def step(self, state: tuple[Any, torch.Tensor]) -> None:
        cache, tok = state
        logits, cache = self.adapter.decode(self.model, tok, cache)
        self.state, self.done = (cache, logits[:, -1:].argmax(-1)), self.done + 1


def _interleaved(n: int, rounds: int, desc: str, progress: bool) -> Iterator[int]:
    """Indices ``0..n-1`` once per round, every other round in reverse order, with one progress bar."""
    with tqdm(total=n * rounds, desc=desc, unit="measurement", disable=not progress) as bar:
        for i in interleaved_order(n, rounds):
            yield i
            bar.update()


def end_to_end_timings(
    loaded: LoadedModel,
    masks: Mapping[str, torch.Tensor],
    kernels: Sequence[str],
    pattern: Pattern,
    sparsity: float,
    progress: bool = True,
    config: E2EConfig | None = None,
    dtype: torch.dtype | None = None,
    cache: str | None = None,
) -> list[dict[str, Any]]:
    """Timing rows (``TimingRow`` columns but ``created_at``/``run_id``) for each kernel: prefill and decode.

    ``kernels`` are registered names or ``auto``. With ``dtype`` other than the model's, a copy
    of the model in that dtype is timed (the loaded model is left as it is). ``cache``
    overrides the timing's cache regime.
    """
    config = config or E2EConfig()
    if cache is not None:
        config = replace(config, timing=replace(config.timing, cache=cache))
    if dtype is not None and dtype != next(loaded.model.parameters()).dtype:
        loaded = replace(loaded, model=copy.deepcopy(loaded.model).to(dtype))
    model, device = loaded.model, loaded.device
    layers = loaded.adapter.prunable_layers(model)
    dtype = next(model.parameters()).dtype
    hardware = provenance.hardware_label(device)
    adapter = loaded.adapter
    ideal, share = _amdahl_ideal(adapter.head_parameters(model), layers, pattern, sparsity)
    limit = loaded.max_context or 2048
    prefill_tokens = min(config.prefill_tokens, limit)
    context_tokens = min(config.decode_context, limit - config.decode_tokens, prefill_tokens)
    name = loaded.entry.name
    shapes = {
        "prefill": {"model": name, "prefill_tokens": prefill_tokens, "layers": len(layers)},
        "decode": {"model": name, "context": context_tokens, "new_tokens": config.decode_tokens, "layers": len(layers)},
    }
    timing = config.timing
    common = dict(pattern=str(pattern), sparsity=sparsity, dtype=dtype, device=str(device), hardware=hardware, ideal=ideal,
                  cache=timing.cache, threads=timing.threads)
    extra = {"prunable_weight_share": share}
    requested = list(dict.fromkeys(n if n == AUTO else kernel_registry.canonical(n) for n in kernels))

    def unsupported(kname: str, why: str, scopes: Sequence[str] = tuple(shapes)) -> list[dict[str, Any]]:
        return [timing_row(kname, "unsupported", scope=s, shape=shapes[s], reason=why, details=extra, **common) for s in scopes]

    if loaded.entry.kind != "causal-lm" or not isinstance(adapter, LanguageModelAdapter):
        return [r for n in requested for r in unsupported(n, f"end-to-end latency is measured for causal LMs, not {loaded.entry.kind}")]
    g = torch.Generator().manual_seed(config.seed)
    prompt = torch.randint(0, adapter.vocab_size(model), (1, prefill_tokens), generator=g).to(device)
    context = prompt[:, :context_tokens]

    def prefill() -> torch.Tensor:
        return adapter.logits(model, prompt)

    def measure_scope(scope: str) -> Timing:
        if scope == "prefill":
            return measure(prefill, timing, device, evictor=evictor)
        decoder = _Decoder(adapter, model, context, config.decode_tokens)
        return measure(decoder.step, timing, device, setup=decoder.setup, evictor=evictor)

    evictor = Evictor(device, timing.evict_bytes) if timing.cache == "cold" else None
    with torch.inference_mode():
        reference = prefill().float()
    rows: list[dict[str, Any]] = []
    todo: list[tuple[str, _Plan]] = []
    for kname in ["dense", *[n for n in requested if n != "dense"]]:
        if kname == AUTO:
            todo.extend((kname, plan) for plan in _auto_plans(layers, masks, pattern, sparsity, {"prefill": prompt.shape[1], "decode": 1}, config))
            continue
        k = make_kernel(kname)
        ok, why = k.supports(pattern, dtype, device)
        if ok:
            todo.append((kname, _Plan(tuple(shapes), lambda layer, k=k: k, k.tolerance(dtype), {"params": k.params})))
        else:
            rows.extend(unsupported(kname, why))
    checked: dict[int, tuple[dict[str, Any], float]] = {}  # plan index -> (details, logits error), once it agrees
    dropped: set[int] = set()
    samples: dict[int, dict[str, list[Timing]]] = {}
    for i in _interleaved(len(todo), config.rounds, "end-to-end latency", progress):
        if i in dropped:
            continue
        kname, plan = todo[i]
        try:
            with swapped(model, layers, plan.kernel_for, masks) as swap:
                if i not in checked:
                    with torch.inference_mode():
                        logits = prefill().float()
                    err = float((logits - reference).abs().max())
                    rtol, atol = (t * LOGITS_TOLERANCE_SCALE for t in plan.tolerance)
                    info = {**extra, **swap.details, **plan.details, **_bytes_bound(swap, share), "logits_rtol": rtol, "logits_atol": atol}
                    if not torch.allclose(logits, reference, rtol=rtol, atol=atol):
                        why = f"logits differ from the masked-dense model: max abs error {err:.3g} (rtol={rtol:g}, atol={atol:g})"
                        rows.extend(timing_row(kname, "failed", scope=s, shape=shapes[s], reason=why, max_abs_error=err, details=info, **common)
                                    for s in plan.scopes)
                        dropped.add(i)
                        continue
                    checked[i] = (info, err)
                for scope in plan.scopes:
                    samples.setdefault(i, {}).setdefault(scope, []).append(measure_scope(scope))
        except KernelUnsupported as exc:
            rows.extend(unsupported(kname, str(exc), plan.scopes))
            dropped.add(i)
    timed = {i: {scope: pooled(ts) for scope, ts in by.items()} for i, by in samples.items() if i not in dropped}
    base = timed.get(0, {})  # dense is todo[0]
    for i, by_scope in sorted(timed.items()):
        kname, _ = todo[i]
        info, err = checked[i]
        for scope, t in by_scope.items():
            d = {**info, "tokens_per_s": 1.0 / t.median} if scope == "decode" else info
            rows.append(timing_row(kname, "ok", scope=scope, shape=shapes[scope], timing=t, dense=base.get(scope),
                                   max_abs_error=err, details=d, **common))
    return rows


@dataclass(frozen=True)
class _Plan:
    """Which kernel each layer gets for some scopes, the logits tolerance and what to record."""

    scopes: tuple[str, ...]
    kernel_for: Callable[[PrunableLayer], Kernel]
    tolerance: tuple[float, float]
    details: dict[str, Any]


def _auto_plans(layers: Sequence[PrunableLayer], masks: Mapping[str, torch.Tensor], pattern: Pattern, sparsity: float,
                tokens: Mapping[str, int], config: E2EConfig) -> list[_Plan]:
    """One plan per scope: the fastest kernel per layer shape at that scope's token count."""
    choice_timing = replace(config.choice_timing, cache=config.timing.cache, threads=config.timing.threads)
    plans = []
    for scope, n in tokens.items():
        with torch.inference_mode():
            chosen: dict[tuple[int, int], Choice] = choose_kernels(layers, masks, pattern, sparsity, n, choice_timing, config.seed)
        dtype = layers[0].weight.dtype
        tolerance = tuple(max(t) for t in zip(*(c.kernel.tolerance(dtype) for c in chosen.values())))
        plans.append(_Plan((scope,), lambda layer, chosen=chosen: chosen[tuple(layer.weight.shape)].kernel, tolerance,
                           {"choice_tokens": n, "choice": {shape_label(s): c.describe() for s, c in chosen.items()}}))
    return plans



def shrunk_timings(dense: LoadedModel, shrunk: LoadedModel, pattern: Pattern, sparsity: float, progress: bool = True,
                   config: E2EConfig | None = None, dtype: torch.dtype | None = None, cache: str | None = None) -> list[dict[str, Any]]:
    """Prefill and decode rows of the unpruned model (kernel ``dense``, the baseline) and of the
    structurally pruned one (kernel ``shrunk``), both with dense matmuls, timed alike in this process."""
    config = config or E2EConfig()
    if cache is not None:
        config = replace(config, timing=replace(config.timing, cache=cache))
    timing = config.timing
    models = {"dense": dense.model, SHRUNK: shrunk.model}
    if dtype is not None:
        models = {k: m if next(m.parameters()).dtype == dtype else copy.deepcopy(m).to(dtype) for k, m in models.items()}
    adapter, device = shrunk.adapter, shrunk.device
    limit = shrunk.max_context or 2048
    prefill_tokens = min(config.prefill_tokens, limit)
    context_tokens = min(config.decode_context, limit - config.decode_tokens, prefill_tokens)
    g = torch.Generator().manual_seed(config.seed)
    prompt = torch.randint(0, adapter.vocab_size(shrunk.model), (1, prefill_tokens), generator=g).to(device)
    evictor = Evictor(device, timing.evict_bytes) if timing.cache == "cold" else None
    names = list(models)
    params = {name: sum(p.numel() for p in {id(p): p for p in m.parameters()}.values()) for name, m in models.items()}
    samples: dict[str, dict[str, list[Timing]]] = {name: {"prefill": [], "decode": []} for name in names}
    for i in _interleaved(len(names), config.rounds, "end-to-end latency", progress):
        name = names[i]
        model = models[name]
        decoder = _Decoder(adapter, model, prompt[:, :context_tokens], config.decode_tokens)
        with torch.inference_mode():
            samples[name]["prefill"].append(measure(lambda: adapter.logits(model, prompt), timing, device, evictor=evictor))
            samples[name]["decode"].append(measure(decoder.step, timing, device, setup=decoder.setup, evictor=evictor))
    timed = {name: {scope: pooled(ts) for scope, ts in by.items()} for name, by in samples.items()}
    rows: list[dict[str, Any]] = []
    for name in names:
        shapes = {"prefill": {"model": shrunk.entry.name, "prefill_tokens": prefill_tokens, "parameters": params[name]},
                  "decode": {"model": shrunk.entry.name, "context": context_tokens, "new_tokens": config.decode_tokens,
                             "parameters": params[name]}}
        for scope, t in timed[name].items():
            details = {"model_state": UNPRUNED if name == "dense" else "structurally pruned", "parameters": params[name]}
            if scope == "decode":
                details["tokens_per_s"] = 1.0 / t.median
            rows.append(timing_row(name, "ok", scope=scope, shape=shapes[scope], timing=t, dense=timed["dense"][scope], pattern=str(pattern),
                                   sparsity=sparsity, dtype=next(models[name].parameters()).dtype, device=str(device),
                                   hardware=provenance.hardware_label(device), cache=timing.cache, details=details))
    return rows
