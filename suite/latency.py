"""End-to-end latency of a pruned model with each kernel swapped into every prunable layer.

For each kernel, every prunable linear (found by the adapter) is replaced by a
:class:`~sparsebench.kernel.SparseLinear` holding the packed masked weight; the logits on
a fixed prompt are checked against the masked-dense model; then prefill latency and decode
throughput are measured with :func:`sparsebench.timing.measure`, and the original modules
are put back. ``dense`` is always measured first, in the same process, and every speedup
is relative to it (its rows are returned even when not requested: they are the baseline).
Two rows per kernel are returned (``scope`` ``prefill`` and ``decode``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from . import provenance
from .adapters import LanguageModelAdapter, PrunableLayer
from .kernel import Kernel, KernelUnsupported, SparseLinear, ideal_speedup, make_kernel
from .kernel import kernels as kernel_registry
from .microbench import timing_row
from .models import LoadedModel
from .patterns import Pattern
from .timing import Timing, TimingConfig, measure

# Rounding differences add up over depth: the logits check allows this multiple of the
# kernel's per-layer tolerance.
LOGITS_TOLERANCE_SCALE = 100.0


@dataclass(frozen=True)
class E2EConfig:
    prefill_tokens: int = 128
    decode_context: int = 16
    decode_tokens: int = 16
    seed: int = 0
    timing: TimingConfig = field(default_factory=lambda: TimingConfig(warmup=1, min_iters=3, min_time_s=1.0))


@contextmanager
def swapped(model: nn.Module, layers: Sequence[PrunableLayer], kernel: Kernel, masks: Mapping[str, torch.Tensor]) -> Iterator[dict[str, Any]]:
    """Replace each layer by the kernel's module inside the block; always restore the originals.

    Yields the details of the first packed layer (what ran). Raises :class:`KernelUnsupported`.
    """
    originals: list[tuple[nn.Module, str, nn.Module]] = []
    details: dict[str, Any] = {}
    try:
        for layer in layers:
            if not layer.is_linear:
                raise KernelUnsupported(f"{layer.name} is a {type(layer.module).__name__}; kernels replace linear layers only")
            w = layer.weight.detach()
            mask = masks.get(layer.name)
            mask = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.to(w.device)
            packed = kernel.pack(w, mask)
            details = details or kernel.details(packed)
            out_f, in_f = w.shape
            parent_name, _, child = layer.name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            originals.append((parent, child, layer.module))
            setattr(parent, child, SparseLinear(kernel, packed, getattr(layer.module, "bias", None), in_f, out_f))
        yield details
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


def _scaled(t: Timing, by: int) -> Timing:
    return Timing(tuple(s / by for s in t.samples), t.threads, t.device, t.clock)


def end_to_end_timings(
    loaded: LoadedModel,
    masks: Mapping[str, torch.Tensor],
    kernels: Sequence[str],
    pattern: Pattern,
    sparsity: float,
    progress: bool = True,
    config: E2EConfig | None = None,
) -> list[dict[str, Any]]:
    """Timing rows (``TimingRow`` columns but ``created_at``/``run_id``) for each kernel: prefill and decode."""
    config = config or E2EConfig()
    model, device = loaded.model, loaded.device
    layers = loaded.adapter.prunable_layers(model)
    dtype = next(model.parameters()).dtype
    hardware = provenance.hardware_label(device)
    ideal, share = _amdahl_ideal(loaded.adapter.head_parameters(model), layers, pattern, sparsity)
    limit = loaded.max_context or 2048
    prefill_tokens = min(config.prefill_tokens, limit)
    context_tokens = min(config.decode_context, limit - config.decode_tokens, prefill_tokens)
    name = loaded.entry.name
    shapes = {
        "prefill": {"model": name, "prefill_tokens": prefill_tokens, "layers": len(layers)},
        "decode": {"model": name, "context": context_tokens, "new_tokens": config.decode_tokens, "layers": len(layers)},
    }
    common = dict(pattern=str(pattern), sparsity=sparsity, dtype=dtype, device=str(device), hardware=hardware, ideal=ideal)
    extra = {"prunable_weight_share": share}

    def unsupported(k: Kernel, why: str) -> list[dict[str, Any]]:
        return [timing_row(k, "unsupported", scope=s, shape=shapes[s], reason=why, details=extra, **common) for s in shapes]

    adapter = loaded.adapter
    if loaded.entry.kind != "causal-lm" or not isinstance(adapter, LanguageModelAdapter):
        return [r for n in kernels for r in unsupported(make_kernel(n), f"end-to-end latency is measured for causal LMs, not {loaded.entry.kind}")]
    g = torch.Generator().manual_seed(config.seed)
    prompt = torch.randint(0, adapter.vocab_size(model), (1, prefill_tokens), generator=g).to(device)
    context = prompt[:, :context_tokens]

    def prefill() -> torch.Tensor:
        return adapter.logits(model, prompt)

    def start_decode() -> tuple[Any, torch.Tensor]:
        logits, cache = adapter.decode(model, context)
        return cache, logits[:, -1:].argmax(-1)

    def decode(state: tuple[Any, torch.Tensor]) -> None:
        cache, tok = state
        for _ in range(config.decode_tokens):  # greedy, one token at a time
            logits, cache = adapter.decode(model, tok, cache)
            tok = logits[:, -1:].argmax(-1)

    with torch.inference_mode():
        reference = prefill().float()
    names = ["dense", *[n for n in dict.fromkeys(kernel_registry.canonical(n) for n in kernels) if n != "dense"]]
    base: dict[str, Timing] = {}
    rows: list[dict[str, Any]] = []
    for kname in tqdm(names, desc="end-to-end latency", unit="kernel", disable=not progress):
        k = make_kernel(kname)
        ok, why = k.supports(pattern, dtype, device)
        if not ok:
            rows.extend(unsupported(k, why))
            continue
        try:
            with swapped(model, layers, k, masks) as details:
                with torch.inference_mode():
                    logits = prefill().float()
                err = float((logits - reference).abs().max())
                rtol, atol = (t * LOGITS_TOLERANCE_SCALE for t in k.tolerance(dtype))
                info = {**extra, **details, "logits_rtol": rtol, "logits_atol": atol}
                if not torch.allclose(logits, reference, rtol=rtol, atol=atol):
                    why = f"logits differ from the masked-dense model: max abs error {err:.3g} (rtol={rtol:g}, atol={atol:g})"
                    rows.extend(timing_row(k, "failed", scope=s, shape=shapes[s], reason=why, max_abs_error=err, details=info, **common) for s in shapes)
                    continue
                timings = {
                    "prefill": measure(prefill, config.timing, device),
                    "decode": _scaled(measure(decode, config.timing, device, setup=start_decode), config.decode_tokens),
                }
        except KernelUnsupported as exc:
            rows.extend(unsupported(k, str(exc)))
            continue
        if kname == "dense":
            base = timings
        for scope, t in timings.items():
            d = {**info, "tokens_per_s": 1.0 / t.median} if scope == "decode" else info
            rows.append(timing_row(k, "ok", scope=scope, shape=shapes[scope], timing=t, dense=base.get(scope),
                                   max_abs_error=err, details=d, **common))
    return rows
