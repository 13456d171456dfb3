"""Language-model families whose call conventions the generic adapter cannot find by itself.

Each adapter is registered under the ``config.model_type`` it serves
(:data:`sparsebench.adapters.language_adapters`); every other model gets the generic
:class:`~sparsebench.adapters.LanguageModelAdapter`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .adapters import LanguageModelAdapter, language_adapters
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
