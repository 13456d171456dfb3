"""Model-family adapters: everything that knows a model family's attribute names and calls.

Where the blocks and prunable layers of a model are, how a calibration batch reaches the
first block, where a block's hidden states are in its call and its output, and how a
language model is called for its loss, its logits or a cached decoding step. No other
module touches a model's attributes or call conventions.

Found generically, so Llama, Mistral, Qwen, OPT, GPT-2 (and BERT / vision backbones) need
no per-family code: the *blocks* are the children of the longest ``nn.ModuleList`` of
identical modules (decoder layers, encoder layers, stages); the *prunable layers* are the
``nn.Linear`` (and GPT-2 ``Conv1D``, optionally ``nn.Conv2d``) modules inside blocks.
Embeddings and the LM head live outside the blocks and are therefore never pruned by
default, as in the literature. No other module knows a model's attribute names.

Vision: with ``include_conv`` the ``nn.Conv2d`` layers inside blocks are prunable too, except
grouped / depthwise convolutions (``groups > 1``), whose ``[out, in/groups * kh * kw]``
weights are tiny and left dense by default. Stems, heads and classifiers sit outside the
blocks and stay dense, the usual "first and last layer dense" convention.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import SparsebenchError


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' GPT-2 style Conv1D stores weight as [in, out]
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


@dataclass(frozen=True)
class PrunableLayer:
    """One prunable weight matrix, always seen in ``[out, in]`` orientation."""

    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        """The weight as ``[out, in]``; a view, so in-place edits reach the module."""
        w = self.module.weight
        if _is_conv1d(self.module):
            return w.t()
        if w.dim() > 2:  # conv: [out, in * kh * kw]
            return w.flatten(1)
        return w

    def as_matrix(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor shaped like the module's weight (e.g. its gradient) seen as ``[out, in]``."""
        if _is_conv1d(self.module):
            return t.t()
        if t.dim() > 2:
            return t.flatten(1)
        return t

    @property
    def is_linear(self) -> bool:
        """A matrix product (``nn.Linear`` or GPT-2 ``Conv1D``), not a convolution."""
        return isinstance(self.module, nn.Linear) or _is_conv1d(self.module)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    def set_weight(self, w: torch.Tensor) -> None:
        """Write a new ``[out, in]`` weight back in the module's own layout."""
        with torch.no_grad():
            self.weight.copy_(w.to(self.module.weight.dtype))

    def apply_mask(self, mask: torch.Tensor) -> None:
        with torch.no_grad():
            self.weight.mul_(mask.to(self.module.weight.device, self.module.weight.dtype))


def _hidden_of(output: Any) -> torch.Tensor:
    # decoder layers return a tensor (transformers 5 Llama) or a tuple whose first item it is
    return output[0] if isinstance(output, (tuple, list)) else output


@dataclass(frozen=True)
class ModelBlock:
    """One repeated unit (decoder layer, encoder layer, stage block) and its prunable layers, in execution order."""

    index: int
    name: str
    module: nn.Module
    layers: tuple[PrunableLayer, ...]

    def run(self, hidden: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        """The block's output hidden states for input ``hidden`` and its other arguments."""
        return _hidden_of(self.module(hidden, *args, **kwargs))


BlockCallRecorder = Callable[[tuple[Any, ...], dict[str, Any]], None]


class ModelAdapter:
    """Finds blocks and prunable layers; ``include_conv`` makes ``nn.Conv2d`` layers prunable (vision).

    How a model is called is left to the subclasses; this base knows only the structure.
    """

    def __init__(self, include_conv: bool = False):
        self.include_conv = include_conv

    def _prunable(self, module: nn.Module) -> bool:
        if isinstance(module, nn.Linear) or _is_conv1d(module):
            return True
        return self.include_conv and isinstance(module, nn.Conv2d) and module.groups == 1

    def block_list(self, model: nn.Module) -> tuple[str, nn.ModuleList]:
        """Name and module of the longest ModuleList of same-class modules holding prunable layers."""
        best: tuple[str, nn.ModuleList] | None = None
        for name, mod in model.named_modules():
            if not isinstance(mod, nn.ModuleList) or len(mod) < 1:
                continue
            if len({type(c) for c in mod}) != 1:
                continue
            if not any(self._prunable(m) for m in mod[0].modules()):
                continue
            if best is None or len(mod) > len(best[1]):
                best = (name, mod)
        if best is None:
            raise SparsebenchError(f"cannot find repeated blocks with prunable layers in {type(model).__name__}")
        return best

    def block_lists(self, model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
        """Every ModuleList of the same block class as :meth:`block_list`'s, in module order.

        Staged backbones (ConvNeXt, Swin, some EfficientNets) keep one ModuleList of blocks
        per stage; their blocks are the concatenation of those lists. Models with a single
        list (decoder LMs, BERT, ViT, EfficientNet-Lite) get exactly that list.
        """
        _, longest = self.block_list(model)
        cls = type(longest[0])
        out: list[tuple[str, nn.ModuleList]] = []
        for name, mod in model.named_modules():
            if not isinstance(mod, nn.ModuleList) or len(mod) < 1 or any(type(c) is not cls for c in mod):
                continue
            if any(name.startswith(f"{prev}.") for prev, _ in out):
                continue  # nested inside a list already taken
            out.append((name, mod))
        return out

    def blocks(self, model: nn.Module) -> list[ModelBlock]:
        out: list[ModelBlock] = []
        for prefix, modlist in self.block_lists(model):
            for i, block in enumerate(modlist):
                bname = f"{prefix}.{i}" if prefix else str(i)
                layers = tuple(
                    PrunableLayer(f"{bname}.{n}", m) for n, m in block.named_modules() if n and self._prunable(m)
                )
                out.append(ModelBlock(len(out), bname, block, layers))
        return out

    def prunable_layers(self, model: nn.Module) -> list[PrunableLayer]:
        return [layer for b in self.blocks(model) for layer in b.layers]

    def iter_untargeted(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        """Every parameter that pruning must leave untouched (all but targeted weights)."""
        targeted = {id(layer.module.weight) for layer in self.prunable_layers(model)}
        seen: set[int] = set()
        for name, p in model.named_parameters():
            if id(p) in targeted or id(p) in seen:
                continue
            seen.add(id(p))
            yield name, p

    def max_context(self, model: nn.Module) -> int | None:
        """The longest sequence the model's configuration allows, if it states one."""
        cfg = getattr(model, "config", None)
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(cfg, key, None)
            if isinstance(v, int) and v > 0:
                return v
        return None

    def head_parameters(self, model: nn.Module) -> int:
        """Weights of the output head (the LM head), which pruning leaves dense; 0 if there is none."""
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        return head.weight.numel() if head is not None and hasattr(head, "weight") else 0

    @staticmethod
    def split_block_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, tuple[Any, ...], dict[str, Any]]:
        """A block call's hidden states (first positional, or the ``hidden_states`` keyword) and its other arguments."""
        if args:
            return args[0], args[1:], kwargs
        return kwargs["hidden_states"], (), {k: v for k, v in kwargs.items() if k != "hidden_states"}

    def feed_first_block(self, model: nn.Module, batches: torch.Tensor, device: torch.device, record: BlockCallRecorder) -> None:
        """Run ``model`` on each batch (one at a time, on ``device``) so that its first block is
        called; ``record(args, kwargs)`` sees every call of that block. The model returns to
        where it was."""
        raise NotImplementedError(f"{type(self).__name__} does not know how to call the model")


class _RecordingBlock(nn.Module):
    """Stands in for a block: passes each call to ``record``, then runs the block."""

    def __init__(self, block: nn.Module, record: BlockCallRecorder):
        super().__init__()
        self.block = block
        self.record = record

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.record(args, kwargs)
        return self.block(*args, **kwargs)


@contextmanager
def _swapped(model: nn.Module, path: str, replacement: nn.Module) -> Iterator[None]:
    parent_name, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    original = getattr(parent, attr)
    setattr(parent, attr, replacement)
    try:
        yield
    finally:
        setattr(parent, attr, original)


@functools.cache
def _cache_keyword(model_class: type) -> str:
    # transformers 5 calls the KV cache ``cache``; 4.x called it ``past_key_values``
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


class LanguageModelAdapter(ModelAdapter):
    """Hugging Face language models (causal and masked): token ids in, logits out."""

    def feed_first_block(self, model: nn.Module, batches: torch.Tensor, device: torch.device, record: BlockCallRecorder) -> None:
        """The block list is swapped for a one-element list holding a recorder around block 0,
        and the backbone (``base_model``: the model without its head, e.g. a 49k-vocabulary LM
        head) runs on each sequence of token ids: neither the head nor blocks 1..N execute, and
        only the stem (embeddings, rotary, final norm) and block 0 visit ``device``."""
        prefix, blocks = self.block_list(model)
        backbone = getattr(model, "base_model", model)
        home = next(model.parameters()).device
        with _swapped(model, prefix, nn.ModuleList([_RecordingBlock(blocks[0], record)])):
            backbone.to(device)
            try:
                for i in range(batches.shape[0]):
                    backbone(input_ids=batches[i : i + 1].to(device), use_cache=False)
            finally:
                backbone.to(home)

    def lm_loss(self, model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
        """The model's own language-modelling loss on ``ids`` (the labels are the inputs)."""
        return model(input_ids=ids, labels=ids, use_cache=False).loss

    def logits(self, model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
        """Logits for every position of ``ids`` (``[batch, tokens, vocab]``), without a KV cache."""
        return model(input_ids=ids, use_cache=False).logits

    def decode(self, model: nn.Module, ids: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
        """One cached forward step: the logits for ``ids`` and the KV cache to pass to the next step."""
        key = _cache_keyword(type(model))
        out = model(input_ids=ids, use_cache=True, **({} if cache is None else {key: cache}))
        return out.logits, getattr(out, key)

    def vocab_size(self, model: nn.Module) -> int:
        """Rows of the input embedding: the token ids the model accepts."""
        return model.get_input_embeddings().num_embeddings


class ImageAdapter(ModelAdapter):
    """Image classifiers: pixel batches ``[n, 3, H, W]`` in, called positionally."""

    def feed_first_block(self, model: nn.Module, batches: torch.Tensor, device: torch.device, record: BlockCallRecorder) -> None:
        """Vision backbones may not route every stage through one block list (EfficientNet's head
        reads block 0's output shape), so the whole model runs and a forward pre-hook on the first
        block records its calls."""
        _, blocks = self.block_list(model)
        home = next(model.parameters()).device
        handle = blocks[0].register_forward_pre_hook(lambda _module, args, kwargs: record(args, kwargs), with_kwargs=True)
        model.to(device)
        try:
            for i in range(batches.shape[0]):
                model(batches[i : i + 1].to(device))
        finally:
            handle.remove()
            model.to(home)


# -- structured pruning: where each family keeps the units that can be removed -------------------


@dataclass(frozen=True)
class StructureLayout:
    """Where a family's blocks keep the units structured pruning removes, and the config keys
    that size them. Paths are module paths inside one block; ``attention`` is ``(q, k, v, o)``.

    Heads can be removed only where the config states the head size separately from the hidden
    size (``head_dim_key``): OPT and GPT-2 derive it as hidden / heads, so fewer heads would
    change it and no smaller config could describe the shrunk model.
    """

    family: str
    depth_key: str
    mlp_in: tuple[str, ...]
    mlp_out: str
    channels_key: str
    attention: tuple[str, str, str, str] | None = None
    heads_key: str | None = None
    kv_heads_key: str | None = None
    head_dim_key: str | None = None

    def matches(self, block: nn.Module) -> bool:
        names = {n for n, _ in block.named_modules()}
        return all(p in names for p in (*self.mlp_in, self.mlp_out, *(self.attention or ())))


LAYOUTS: tuple[StructureLayout, ...] = (
    StructureLayout("llama", "num_hidden_layers", ("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj", "intermediate_size",
                    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
                    "num_attention_heads", "num_key_value_heads", "head_dim"),
    StructureLayout("opt", "num_hidden_layers", ("fc1",), "fc2", "ffn_dim"),
    StructureLayout("gpt2", "n_layer", ("mlp.c_fc",), "mlp.c_proj", "n_inner"),
)


def structure_layout(model: nn.Module, block: nn.Module) -> StructureLayout:
    """The layout of ``model``'s blocks; a one-line error for a family structured pruning does not know."""
    for layout in LAYOUTS:
        if layout.matches(block) and hasattr(getattr(model, "config", None), layout.depth_key):
            return layout
    raise SparsebenchError(f"structured pruning knows {', '.join(x.family for x in LAYOUTS)}-style blocks; "
                           f"{type(model).__name__} has none of them")


def slice_linear(module: nn.Module, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The ``weight`` (and ``bias``) of a linear layer keeping only the given output / input
    indices, in the module's own layout (GPT-2's ``Conv1D`` stores ``[in, out]``)."""
    w = module.weight.detach()
    out_dim, in_dim = (1, 0) if _is_conv1d(module) else (0, 1)
    if out_keep is not None:
        w = w.index_select(out_dim, out_keep.to(w.device))
    if in_keep is not None:
        w = w.index_select(in_dim, in_keep.to(w.device))
    out = {"weight": w.clone()}
    bias = getattr(module, "bias", None)
    if bias is not None:
        out["bias"] = (bias.detach().index_select(0, out_keep.to(bias.device)) if out_keep is not None else bias.detach()).clone()
    return out


def matmul_weights(model: nn.Module) -> int:
    """Weights of every matrix product in ``model`` (``nn.Linear`` and ``Conv1D``, the LM head included)."""
    seen: set[int] = set()
    total = 0
    for m in model.modules():
        if (isinstance(m, nn.Linear) or _is_conv1d(m)) and id(m.weight) not in seen:
            seen.add(id(m.weight))
            total += m.weight.numel()
    return total
