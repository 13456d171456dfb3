"""Calibration sets as specs: (dataset, nsamples, seqlen, seed) → token tensor.

Sampling follows the Wanda / SparseGPT reference code: for each sample, draw a random
document long enough for ``seqlen`` tokens and a random window inside it; for a corpus
that is one long document (WikiText-2), draw a random window of the joined text. The
same spec and tokenizer always give the same tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .errors import InvalidSpecError
from .data import datasets
from .text import load_documents


@dataclass(frozen=True)
class CalibrationSpec:
    dataset: str  # a text asset name, e.g. "c4-train", "wikitext2-train", "lambada-text"
    nsamples: int = 128
    seqlen: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nsamples < 1 or self.seqlen < 2:
            raise InvalidSpecError(f"calibration needs nsamples >= 1 and seqlen >= 2, got {self.nsamples}x{self.seqlen}")

    def __str__(self) -> str:
        return f"{self.dataset}:{self.nsamples}x{self.seqlen}@{self.seed}"


def sample_calibration(spec: CalibrationSpec, tokenizer, max_context: int | None = None) -> torch.Tensor:
    """``[nsamples, seqlen]`` token ids drawn reproducibly from ``spec.dataset``.

    For an image asset (``imagenet-samples``…) ``tokenizer`` is the model's image processor
    and the result is ``[nsamples, 3, H, W]`` pixel values (``seqlen`` is unused).
    """
    from .tasks.imagenet.data import is_image_asset, sample_image_batch

    if is_image_asset(spec.dataset):
        return sample_image_batch(spec.dataset, spec.nsamples, spec.seed, tokenizer)
    seqlen = min(spec.seqlen, max_context) if max_context else spec.seqlen
    docs, found = load_documents(spec.dataset)
    join = datasets.get(found.asset).calibration_join
    rng = random.Random(spec.seed)
    # documents long enough to hold a window (a token spans at least one character)
    long_docs = [i for i, d in enumerate(docs) if len(d) > seqlen]
    if join is not None or not long_docs:
        # a corpus of rows (WikiText-2) or of short documents (LAMBADA): windows of the joined stream
        return _joined_windows(spec, docs, tokenizer, seqlen, rng, "\n\n" if join is None else join)
    samples: list[torch.Tensor] = []
    for _draw in range(100 * spec.nsamples):  # the reference repos' loop: redraw until a document fits
        if len(samples) == spec.nsamples:
            break
        ids = tokenizer(docs[rng.choice(long_docs)], return_tensors="pt").input_ids[0]
        if ids.numel() > seqlen:
            s = rng.randint(0, ids.numel() - seqlen - 1)
            samples.append(ids[s : s + seqlen])
    if len(samples) < spec.nsamples:
        # documents longer than seqlen characters but rarely seqlen tokens (LAMBADA at 512):
        # fall back to windows of the joined stream, from a fresh generator (still reproducible)
        return _joined_windows(spec, docs, tokenizer, seqlen, random.Random(spec.seed), "\n\n")
    return torch.stack(samples)


def _joined_windows(spec: CalibrationSpec, docs, tokenizer, seqlen: int, rng: random.Random, join: str) -> torch.Tensor:
    ids = tokenizer(join.join(docs), return_tensors="pt").input_ids[0]
    if ids.numel() <= seqlen:
        raise InvalidSpecError(f"{spec.dataset} has {ids.numel()} tokens, fewer than seqlen {seqlen}")
    starts = [rng.randint(0, ids.numel() - seqlen - 1) for _ in range(spec.nsamples)]
    return torch.stack([ids[s : s + seqlen] for s in starts])
