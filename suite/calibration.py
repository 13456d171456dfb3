"""The calibration pass shared by every calibration-based method.

One pass, as in the Wanda / SparseGPT reference code but written once for every family
the adapter finds. The block-by-block driver (:mod:`sparsebench.drivers`) prunes with it;
a method may also run a read-only pass of its own (OWL's outlier ratios).

1. sample the suite's calibration tokens (``CalibrationSpec``: dataset, nsamples, seqlen, seed);
2. capture the inputs of the first block: the model's adapter feeds each calibration
   sequence to the model so that block 0 is called (for language models a recorder stands
   in for block 0 while the backbone runs, so neither the LM head nor blocks 1..N execute;
   image models run whole, with a pre-hook on block 0). Each call's hidden states and the
   first call's other arguments (attention mask, position embeddings, ...) are kept, once
   per kind of block where a family calls its blocks differently (Gemma 3's sliding-window
   and global layers); no exception is used as control flow;
3. for each block: forward hooks on its prunable layers feed ``observe(layer, x)``; the
   driver's ``step(block)`` runs (pruning its layers); the block is run again with the
   pruned weights and its outputs become the next block's inputs.

Peak memory is the model plus one set of hidden states for the calibration sequences
(outputs replace inputs sequence by sequence) and one block's statistics, e.g. SparseGPT's
Hessians. With ``PruneContext.compute_device`` set to a GPU while the model
stays on the CPU, each block is moved to the GPU only while it is processed (offload).

All calibration sequences have the same length and no padding, so the keyword arguments
captured with the first sequence (mask, positions) are valid for all of them. Calibration
windows go through the adapter's ``begin_windows`` (Gemma 3: ``<bos>`` first) as the tasks' do.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .adapters import LanguageModelAdapter, ModelBlock, PrunableLayer
from .calibration_data import sample_calibration
from .errors import InvalidSpecError

if typing.TYPE_CHECKING:
    from .pruning import PruneContext

Observer = Callable[[PrunableLayer, torch.Tensor], None]
BlockStep = Callable[[ModelBlock], None]


@dataclass
class BlockInputs:
    """Inputs of the current block: one hidden-state tensor per sequence, and the other
    arguments of a block call, shared by the sequences, per kind of block (``calls``) with
    each block's kind (``kinds``, in block order)."""

    hidden: list[torch.Tensor]
    calls: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]
    kinds: tuple[str, ...]

    def call_of(self, index: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments (besides the hidden states) block ``index`` is called with."""
        return self.calls[self.kinds[index]]


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor inside (tuples, lists, dicts) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def layer_input(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A prunable layer's input as ``[..., in]`` matching its ``[out, in]`` weight (convs are unfolded)."""
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return cols.transpose(1, 2)
    return x


def calibration_tokens(ctx: PruneContext) -> torch.Tensor:
    """``[nsamples, seqlen]`` calibration token ids of the run (seqlen capped at the model's context)."""
    if ctx.calibration is None:
        raise InvalidSpecError("this method needs calibration data, but the run has no calibration spec")
    # sampled once per run: methods with two passes (OWL, then its base) reuse the tokens
    key = (ctx.calibration, id(ctx.loaded.processor), ctx.loaded.max_context)
    if ctx.token_cache is None or ctx.token_cache[0] != key:
        tokens = sample_calibration(ctx.calibration, ctx.loaded.processor, ctx.loaded.max_context)
        ctx.token_cache = (key, ctx.loaded.adapter.begin_windows(tokens, ctx.loaded.processor))
    return ctx.token_cache[1]


@torch.no_grad()
def capture_block_inputs(ctx: PruneContext, tokens: torch.Tensor) -> BlockInputs:
    """Feed each sequence of ``tokens`` to the model and return what block 0 was called with."""
    adapter = ctx.loaded.adapter
    compute = ctx.compute_device or ctx.loaded.device
    kinds = adapter.block_kinds(ctx.loaded.model)
    inputs = BlockInputs([], {}, kinds)

    def record(args: tuple[Any, ...], kwargs: dict[str, Any], kind: str) -> None:
        hidden, rest, extra = adapter.split_block_call(args, kwargs)
        if kind not in inputs.calls:
            inputs.calls[kind] = (to_device(rest, compute), to_device(extra, compute))
        if kind == kinds[0]:  # block 0's call: the sequence's hidden states
            inputs.hidden.append(hidden.detach().to(compute))

    adapter.feed_first_block(ctx.loaded.model, tokens, compute, record)
    return inputs


@torch.no_grad()
def forward_each(block: ModelBlock, inputs: BlockInputs, advance: bool,
                 visit: Callable[[ModelBlock, torch.Tensor, torch.Tensor], None] | None = None) -> None:
    """Run the block on every sequence (``visit(block, input, output)`` sees each); with
    ``advance`` replace each sequence's hidden states by the block's output as it goes, so the
    calibration set's inputs and outputs never coexist."""
    args, kwargs = inputs.call_of(block.index)
    for i, h in enumerate(inputs.hidden):
        out = block.run(h, args, kwargs)
        if visit is not None:
            visit(block, h, out)
        if advance:
            inputs.hidden[i] = out


@contextmanager
def observing(layers: tuple[PrunableLayer, ...], observe: Observer) -> Iterator[None]:
    """Forward hooks that pass each layer's input (as ``[..., in]``) to ``observe``."""

    def hook_for(layer: PrunableLayer):
        def hook(module: nn.Module, args: tuple[Any, ...], _output: Any) -> None:
            observe(layer, layer_input(module, args[0].detach()))

        return hook

    handles = [layer.module.register_forward_hook(hook_for(layer)) for layer in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def blockwise(
    ctx: PruneContext,
    observe: Observer,
    step: BlockStep,
    desc: str = "calibrating",
    tokens: torch.Tensor | None = None,
    changes_weights: bool = True,
) -> None:
    """Calibration pass: observe each block's layers, call ``step(block)``, feed the next block.

    With ``changes_weights`` (pruning), the observing pass keeps no outputs; after ``step``
    the block is run again and its outputs replace its inputs sequence by sequence, so the
    next block sees the pruned model's activations (as in the reference implementations).
    Without it (a read-only pass such as OWL's), the observing pass advances directly.
    Either way only one calibration set of hidden states is held.
    """
    from tqdm.auto import tqdm

    loaded = ctx.loaded
    if tokens is None:
        tokens = calibration_tokens(ctx)
    compute = ctx.compute_device or loaded.device
    inputs = capture_block_inputs(ctx, tokens)
    for block in tqdm(loaded.adapter.blocks(loaded.model), desc=desc, disable=not ctx.progress, leave=False, unit="block"):
        home = next(block.module.parameters()).device
        block.module.to(compute)
        with observing(block.layers, observe):
            forward_each(block, inputs, advance=not changes_weights)
        with torch.no_grad():
            step(block)
        if changes_weights:
            forward_each(block, inputs, advance=True)
        block.module.to(home)


def accumulate_gradients(ctx: PruneContext, tokens: torch.Tensor, observe: Observer, desc: str = "gradients") -> None:
    """Pass each sequence's gradient of the model's loss w.r.t. every prunable weight (as
    ``[out, in]``) to ``observe``.

    Runs on the dense model where it lives (before any block is pruned); only the
    targeted weights require gradients while it runs.
    """
    from tqdm.auto import tqdm

    adapter = ctx.loaded.adapter
    if not isinstance(adapter, LanguageModelAdapter):
        raise InvalidSpecError(f"gradients need a language-modelling loss; {ctx.loaded.entry.name} is a {ctx.loaded.entry.kind} model")
    model = ctx.loaded.model
    layers = adapter.prunable_layers(model)
    device = next(model.parameters()).device
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    for layer in layers:
        layer.module.weight.requires_grad_(True)
    try:
        for i in tqdm(range(tokens.shape[0]), desc=desc, disable=not ctx.progress, leave=False, unit="seq"):
            model.zero_grad(set_to_none=True)
            ids = tokens[i : i + 1].to(device)
            with torch.enable_grad():
                adapter.lm_loss(model, ids).backward()
            with torch.no_grad():
                for layer in layers:
                    observe(layer, layer.as_matrix(layer.module.weight.grad))
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in flags.items():
            p.requires_grad_(flag)


@torch.no_grad()
def block_outputs(ctx: PruneContext, tokens: torch.Tensor, visit: Callable[[ModelBlock, torch.Tensor, torch.Tensor], None],
                  desc: str = "calibrating") -> None:
    """Read-only pass: each block runs on every calibration sequence and ``visit(block, input,
    output)`` sees its hidden states in and out (``[1, tokens, hidden]``); the outputs feed the next block."""
    from tqdm.auto import tqdm

    loaded = ctx.loaded
    compute = ctx.compute_device or loaded.device
    inputs = capture_block_inputs(ctx, tokens)
    for block in tqdm(loaded.adapter.blocks(loaded.model), desc=desc, disable=not ctx.progress, leave=False, unit="block"):
        home = next(block.module.parameters()).device
        block.module.to(compute)
        forward_each(block, inputs, advance=True, visit=visit)
        block.module.to(home)
