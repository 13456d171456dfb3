"""Suites: named, versioned bundles of calibration + tasks + evaluation settings.

Results compare only within one suite *version*; change a setting, bump the version.
A suite's ``task_settings`` may also cover tasks outside its default list, so
``--task wikitext2`` under ``quick`` evaluates the quick subset, not the full split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .calibration_data import CalibrationSpec
from .errors import InvalidSpecError
from .registry import Registry
from .task import Task, tasks


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    calibration: CalibrationSpec
    tasks: tuple[str, ...]
    task_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    modality: str = "causal-lm"

    def make_task(self, name: str) -> Task:
        cls = tasks.get(name)
        return cls.from_mapping(self.task_settings.get(cls.meta.name, {}))

    def task_list(self, override: tuple[str, ...] | None = None) -> tuple[str, ...]:
        names = tuple(tasks.canonical(t) for t in (override or self.tasks))
        for n in names:
            modality = tasks.get(n).meta.modality
            if modality != self.modality:
                raise InvalidSpecError(f"task {n!r} is for {modality} models, suite {self.name!r} for {self.modality}")
        return names


suites: Registry[Suite] = Registry("suite")

_QUICK_PPL = {"seqlen": 2048, "max_windows": 4}

# Zero-shot subsets of the quick suite: fixed random documents (seed 0) of the validation
# splits shipped offline; n is small because SmolLM2-135M scores ~45 lm-eval tokens/s on a
# loaded 2-core CPU (HellaSwag's 4 long endings cost ~9 s per document there).
_QUICK_ZEROSHOT = {
    "arc_easy": {"limit": 100, "split": "validation", "seed": 0},
    "piqa": {"limit": 100, "seed": 0},
    "hellaswag": {"limit": 50, "seed": 0},
}

suites.register("quick", Suite(
    "quick",
    "2",
    "Offline in minutes on a laptop CPU: 32x512 LAMBADA-text calibration; perplexity on the "
    "first 4 windows of 2048 tokens (LAMBADA text by default; WikiText-2 with --task wikitext2); "
    "0-shot lm-eval accuracy on fixed seeded subsets: 100 ARC-Easy (validation), 100 PIQA, 50 HellaSwag.",
    CalibrationSpec("lambada-text", nsamples=32, seqlen=512, seed=0),
    ("lambada-ppl", "arc_easy", "piqa", "hellaswag"),
    {"lambada-ppl": _QUICK_PPL, "wikitext2": _QUICK_PPL, **_QUICK_ZEROSHOT},
))

suites.register("paper", Suite(
    "paper",
    "2",
    "The literature protocol (Wanda, SparseGPT): 128x2048 C4 calibration, seed 0; full WikiText-2 "
    "test perplexity at seqlen 2048; 0-shot lm-eval accuracy on the full standard splits of BoolQ, "
    "RTE, HellaSwag, WinoGrande, ARC-Easy, ARC-Challenge, OpenBookQA and PIQA.",
    CalibrationSpec("c4-train", nsamples=128, seqlen=2048, seed=0),
    ("wikitext2", "boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "piqa"),
    {"wikitext2": {"seqlen": 2048}},
))

# Tiny calibration and evaluation: the same code paths in seconds, for tests, smoke checks and
# sweeps whose worker processes must see the suite too (so it lives here, not in a conftest).
suites.register("unit", Suite(
    "unit", "1", "tiny calibration and evaluation for tests and smoke checks (not a benchmark)",
    CalibrationSpec("lambada-text", nsamples=4, seqlen=64, seed=0),
    ("lambada-ppl",),
    {"lambada-ppl": {"seqlen": 64, "max_windows": 2}, "wikitext2": {"seqlen": 64, "max_windows": 2}},
))

# --- vision and learned-sparse retrieval (issue 6) ----------------------------------------------
# For image suites the calibration asset is an image set: methods get [n, 3, H, W] batches made
# by the model's own processor (seqlen is unused). Retrieval suites calibrate on text.

suites.register("vision-quick", Suite(
    "vision-quick",
    "1",
    "Offline: 32 calibration images and top-1/top-5/dense agreement on the 1,000 imagenet-samples "
    "images (one per class; calibration images are drawn from the same set, labels unused).",
    CalibrationSpec("imagenet-samples", nsamples=32, seqlen=2, seed=0),
    ("imagenet-samples",),
    {"imagenet-samples": {"batch_size": 50}},
    modality="image-classification",
))

suites.register("vision-paper", Suite(
    "vision-paper",
    "1",
    "The one-shot CNN/ViT protocol: 128 ImageNet training images for calibration, seed 0; top-1/top-5 "
    "and dense agreement on the full 50,000-image validation set.",
    CalibrationSpec("imagenet-train", nsamples=128, seqlen=2, seed=0),
    ("imagenet-val",),
    {"imagenet-val": {"batch_size": 64}},
    modality="image-classification",
))

suites.register("retrieval-quick", Suite(
    "retrieval-quick",
    "1",
    "Offline: 32x128 LAMBADA-text calibration; SPLADE retrieval of the first 200 SQuAD questions over "
    "803 paragraphs (nDCG@10, MRR@10, recall@100, non-zeros, FLOPS, index size, latency).",
    CalibrationSpec("lambada-text", nsamples=32, seqlen=128, seed=0),
    ("squad-retrieval",),
    {"squad-retrieval": {"max_queries": 200, "doc_max_length": 256, "query_max_length": 64}},
    modality="masked-lm",
))

suites.register("retrieval-paper", Suite(
    "retrieval-paper",
    "1",
    "BEIR zero-shot (SciFact, NFCorpus, FiQA test splits at pinned revisions); 128x512 C4 calibration; "
    "documents truncated to 256 tokens, queries to 64.",
    CalibrationSpec("c4-train", nsamples=128, seqlen=512, seed=0),
    ("beir-scifact", "beir-nfcorpus", "beir-fiqa"),
    {t: {"doc_max_length": 256, "query_max_length": 64} for t in ("beir-scifact", "beir-nfcorpus", "beir-fiqa", "squad-retrieval")},
    modality="masked-lm",
))
