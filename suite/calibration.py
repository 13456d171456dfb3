"""The block-by-block calibration driver shared by every calibration-based method.

One pass, as in the Wanda / SparseGPT reference code but written once for every family
the adapter finds:

1. sample the suite's calibration tokens (``CalibrationSpec``: dataset, nsamples, seqlen, seed);
2. capture the inputs of the first block: the block list is swapped for a one-element list
   holding a :class:`_InputRecorder` around block 0 and the backbone (the model without its
   head) is called on each sequence. The recorder stores the block's positional and keyword
   arguments (hidden states, attention mask, position embeddings, ...) and runs block 0 so
   the backbone returns normally. No exception is used as control flow, the LM head never
   runs, and blocks 1..N are never called;
3. for each block: forward hooks on its prunable layers feed ``observe(layer, x)``; the
   block's layers are pruned (``prune_layer``); the block is run again with the pruned
   weights and its outputs become the next block's inputs.

Peak memory is the model plus one set of hidden states for the calibration sequences
(outputs replace inputs sequence by sequence) and one block's statistics, e.g. SparseGPT's
Hessians. With ``PruneContext.compute_device`` set to a GPU while the model
stays on the CPU, each block is moved to the GPU only while it is processed (offload).

All calibration sequences have the same length and no padding, so the keyword arguments
captured with the first sequence (mask, positions) are valid for all of them.
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

from .adapters import Block, PrunableLayer
from .calibration_data import sample_calibration
from .errors import InvalidSpecError
from .masks import Masks

if typing.TYPE_CHECKING:
    from .method import PruneContext, ScoreMethod

Observer = Callable[[PrunableLayer, torch.Tensor], None]
BlockStep = Callable[[Block], None]


@dataclass
class BlockInputs:
    """Inputs of the current block: one hidden-state tensor per sequence, shared extras."""

    hidden: list[torch.Tensor]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


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


def _hidden_of(output: Any) -> torch.Tensor:
    # decoder layers return a tensor (transformers 5 Llama) or a tuple whose first item it is
    return output[0] if isinstance(output, (tuple, list)) else output


class _InputRecorder(nn.Module):
    """Stands in for block 0 while the backbone runs: records the block's inputs, then runs it."""

    def __init__(self, block: nn.Module, device: torch.device):
        super().__init__()
        self.block = block
        self.device = device
        self.hidden: list[torch.Tensor] = []
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            hidden, rest, extra = args[0], args[1:], kwargs
        else:  # a family that passes the hidden states by keyword
            hidden, rest, extra = kwargs["hidden_states"], (), {k: v for k, v in kwargs.items() if k != "hidden_states"}
        if not self.hidden:
            self.args, self.kwargs = to_device(rest, self.device), to_device(extra, self.device)
        self.hidden.append(hidden.detach().to(self.device))
        return self.block(*args, **kwargs)


def _backbone(model: nn.Module) -> nn.Module:
    # Hugging Face models expose the model without its head as `base_model`; the head
    # (e.g. a 49k-vocabulary LM head) is not needed to reach the first block.
    return getattr(model, "base_model", model)


@contextmanager
def _swapped_blocks(model: nn.Module, prefix: str, replacement: nn.ModuleList) -> Iterator[None]:
    parent_name, _, attr = prefix.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    original = getattr(parent, attr)
    setattr(parent, attr, replacement)
    try:
        yield
    finally:
        setattr(parent, attr, original)


def calibration_tokens(ctx: PruneContext) -> torch.Tensor:
    """``[nsamples, seqlen]`` calibration token ids of the run (seqlen capped at the model's context)."""
    if ctx.calibration is None:
        raise InvalidSpecError("this method needs calibration data, but the run has no calibration spec")
    # sampled once per run: methods with two passes (OWL, then its base) reuse the tokens
    key = (ctx.calibration, id(ctx.loaded.processor), ctx.loaded.max_context)
    if ctx.token_cache is None or ctx.token_cache[0] != key:
        ctx.token_cache = (key, sample_calibration(ctx.calibration, ctx.loaded.processor, ctx.loaded.max_context))
    return ctx.token_cache[1]


@torch.no_grad()
def capture_block_inputs(ctx: PruneContext, tokens: torch.Tensor) -> BlockInputs:
    """Run the backbone up to block 0 on each sequence of ``tokens`` and return block 0's inputs."""
    loaded = ctx.loaded
    model = loaded.model
    prefix, blocks = loaded.adapter.block_list(model)
    compute = ctx.compute_device or loaded.device
    home = next(model.parameters()).device
    if tokens.is_floating_point():  # image batches: see _capture_by_pre_hook
        return _capture_by_pre_hook(model, blocks[0], tokens, compute, home)
    recorder = _InputRecorder(blocks[0], compute)
    backbone = _backbone(model)
    with _swapped_blocks(model, prefix, nn.ModuleList([recorder])):
        # offload: only the stem (embeddings, rotary, final norm) and block 0 visit the device
        backbone.to(compute)
        try:
            for i in range(tokens.shape[0]):
                backbone(input_ids=tokens[i : i + 1].to(compute), use_cache=False)
        finally:
            backbone.to(home)
    return BlockInputs(recorder.hidden, recorder.args, recorder.kwargs)


def _capture_by_pre_hook(model: nn.Module, block0: nn.Module, pixels: torch.Tensor, compute: torch.device, home: torch.device) -> BlockInputs:
    """Vision backbones may not route every stage through one block list (EfficientNet's head
    reads block 0's output shape), so for images the whole model runs, called positionally,
    and a forward pre-hook records block 0's inputs."""
    hidden: list[torch.Tensor] = []
    saved: dict[str, Any] = {"args": (), "kwargs": {}}

    def record(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        h = args[0] if args else kwargs["hidden_states"]
        if not hidden:
            saved["args"] = to_device(args[1:], compute)
            saved["kwargs"] = to_device({k: v for k, v in kwargs.items() if k != "hidden_states"}, compute)
        hidden.append(h.detach().to(compute))

    handle = block0.register_forward_pre_hook(record, with_kwargs=True)
    model.to(compute)
    try:
        for i in range(pixels.shape[0]):
            model(pixels[i : i + 1].to(compute))
    finally:
        handle.remove()
        model.to(home)
    return BlockInputs(hidden, saved["args"], saved["kwargs"])


@torch.no_grad()
def forward_each(block: nn.Module, inputs: BlockInputs, advance: bool) -> None:
    """Run the block on every sequence; with ``advance`` replace each sequence's hidden states
    by the block's output as it goes, so the calibration set's inputs and outputs never coexist."""
    for i, h in enumerate(inputs.hidden):
        out = _hidden_of(block(h, *inputs.args, **inputs.kwargs))
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
            forward_each(block.module, inputs, advance=not changes_weights)
        with torch.no_grad():
            step(block)
        if changes_weights:
            forward_each(block.module, inputs, advance=True)
        block.module.to(home)


def accumulate_gradients(method: ScoreMethod, ctx: PruneContext, tokens: torch.Tensor) -> None:
    """Give ``method`` each sequence's gradient of the mean-token LM loss w.r.t. every prunable weight.

    Runs on the dense model where it lives (before any block is pruned); only the
    targeted weights require gradients while it runs.
    """
    from tqdm.auto import tqdm

    model = ctx.loaded.model
    layers = ctx.loaded.adapter.prunable_layers(model)
    device = next(model.parameters()).device
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    for layer in layers:
        layer.module.weight.requires_grad_(True)
    try:
        for i in tqdm(range(tokens.shape[0]), desc=f"{method.name}: gradients", disable=not ctx.progress, leave=False, unit="seq"):
            model.zero_grad(set_to_none=True)
            ids = tokens[i : i + 1].to(device)
            with torch.enable_grad():
                model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
            with torch.no_grad():
                for layer in layers:
                    method.observe_gradient(layer, layer.as_matrix(layer.module.weight.grad))
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in flags.items():
            p.requires_grad_(flag)


def prune_blockwise(method: ScoreMethod, ctx: PruneContext) -> Masks:
    """Prune ``ctx.loaded.model`` block by block with ``method``; return the masks (True = kept)."""
    masks: Masks = {}
    tokens = calibration_tokens(ctx)
    if method.meta.needs_gradients:
        accumulate_gradients(method, ctx, tokens)

    def step(block: Block) -> None:
        for layer in block.layers:
            masks[layer.name] = method.prune_layer(ctx, layer).cpu()
            method.release(layer)

    blockwise(ctx, method.observe, step, desc=f"{method.name}: pruning", tokens=tokens)
    return masks
