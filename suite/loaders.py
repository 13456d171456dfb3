"""Loaders per model kind (registered in :data:`sparsebench.models.loaders`)."""

from __future__ import annotations

import torch

from .adapters import ModelAdapter
from .data import Resolved
from .models import LoadedModel, ModelEntry, dequantized_gguf_folder, loaders


@loaders.register("causal-lm")
def load_causal_lm(entry: ModelEntry, found: Resolved, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = dequantized_gguf_folder(found.path, found.revision) if found.fmt == "gguf" else found.path
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    return LoadedModel(entry, model, tok, found.revision, found.source.describe(), ModelAdapter(), device)


@loaders.register("masked-lm")
def load_masked_lm(entry: ModelEntry, found: Resolved, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(found.path)
    model = AutoModelForMaskedLM.from_pretrained(found.path, dtype=dtype).to(device)
    return LoadedModel(entry, model, tok, found.revision, found.source.describe(), ModelAdapter(), device)
