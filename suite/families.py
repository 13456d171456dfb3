"""Language-model families whose call conventions the generic adapter cannot find by itself.

Each adapter is registered under the ``config.model_type`` it serves
(:data:`sparsebench.adapters.language_adapters`); every other model gets the generic
:class:`~sparsebench.adapters.LanguageModelAdapter`. Below them, each family's
:class:`StructureLayout`: where its blocks keep the heads and channels structured pruning removes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .adapters import LanguageModelAdapter, _is_conv1d, language_adapters
from .errors import SparsebenchError


@language_adapters.register("gemma3_text")
class Gemma3Adapter(LanguageModelAdapter):
    """Gemma 3 text models (Gemma Team, 2025, *Gemma 3 Technical Report*, arXiv:2503.19786).

    **Interleaved sliding-window and global attention.** Gemma 3 alternates five local layers
    (sliding-window attention over the last ``sliding_window`` tokens, 512 for the 270M model,
    rotary base 10k) with one global layer (full causal attention, rotary base 1M);
    ``config.layer_types`` names each. The model builds one attention mask and one set of
    rotary embeddings per kind and hands every layer its kind's. A calibration pass that
    replayed block 0's arguments to every block would run the global layers with the local
    mask and frequencies, so :meth:`block_kinds` names each block's kind: the calibration
    pass records each kind's arguments once and calls every block with its own.

    **Tied embeddings, never pruned.** ``lm_head`` shares its weight with the input embedding
    (262,144 × 640: 168M of the 270M model's 268M parameters). Both live outside the decoder
    blocks, so neither is ever a prunable layer; the shared tensor is checked once among the
    untargeted parameters (unchanged by pruning), and the latency model counts the head's
    product as dense work.

    **BOS.** Gemma is trained on sequences that begin with ``<bos>`` and its tokenizer adds
    one to every text. A perplexity stream is tokenized once, so only its first window would
    begin with ``<bos>``; Gemma scores a window that starts mid-text far worse than the same
    tokens after ``<bos>`` (the first position acts as the attention sink). :meth:`begin_windows`
    puts ``<bos>`` at the first position of every perplexity and calibration window: that
    position is context only and never predicted, so the predicted tokens are exactly the
    standard protocol's. For lm-eval, ``add_bos_token`` is set, so every context is encoded
    with ``<bos>`` whatever the tokenizer's defaults (and the stored metric details say so).
    """

    add_bos_token = True

    def block_kinds(self, model: nn.Module) -> tuple[str, ...]:
        """``config.layer_types``: ``sliding_attention`` or ``full_attention`` per block."""
        kinds = tuple(model.config.layer_types)
        n = len(self.blocks(model))
        if len(kinds) != n:
            raise SparsebenchError(f"Gemma 3 config names {len(kinds)} layer types for {n} decoder blocks")
        return kinds

    def begin_windows(self, windows: torch.Tensor, processor: Any) -> torch.Tensor:
        """Token windows ``[n, seqlen]`` with ``<bos>`` in place of each window's first token."""
        bos = getattr(processor, "bos_token_id", None)
        if bos is None:
            raise SparsebenchError("Gemma 3 windows begin with <bos>, but the tokenizer names no BOS token")
        out = windows.clone()
        out[:, 0] = bos
        return out


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
