"""Calibration sets as specs: (dataset, nsamples, seqlen, seed, sampling rule) → token tensor.

A suite's ``[calibration]`` table names the rule that draws the windows (:data:`sampling_rules`):

- ``reference``: the Wanda / SparseGPT WikiText-2 loader. The dataset's documents joined
  into one text (by the dataset's join: ``" "`` for the WikiText-2 train rows, as those
  loaders join them; ``"\\n\\n"`` otherwise) are tokenized whole; ``random.seed(seed)``; for
  each sample ``i = random.randint(0, ntokens - seqlen - 1)`` and the window ``ids[i:i + seqlen]``.
- ``reference-documents``: their C4 loader. For each sample, documents are drawn with
  ``random.randint(0, ndocs - 1)`` until one has more than ``seqlen`` tokens; then a window
  of it is drawn as above.
- ``documents``: a random document among those with more than ``seqlen`` characters, and a
  random window of it if it has more than ``seqlen`` tokens (redrawn otherwise). A dataset
  with a join (rows of one text) or of documents too short for windows falls back to the
  ``reference`` windows of the joined text.

The same spec and tokenizer always give the same tokens. ``seqlen`` is capped at the
model's context.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .data import Resolved, datasets
from .errors import InvalidSpecError, SparsebenchError
from .params import check_params, param
from .registry import Registry
from .text import load_documents


@dataclass(frozen=True)
class CalibrationSpec:
    dataset: str  # a registered dataset: a text asset (c4-train, wikitext2-train-rows, ...) or an image set
    nsamples: int = param(128, ge=1)
    seqlen: int = param(2048, ge=2)  # tokens per sample (capped at the model's context; unused for images)
    seed: int = param(0, ge=0)
    rule: str = "documents"  # a registered sampling rule (``sparsebench list sampling-rules``)

    def __post_init__(self) -> None:
        check_params("calibration", self, "setting")

    def __str__(self) -> str:
        return f"{self.dataset}:{self.nsamples}x{self.seqlen}@{self.seed} ({self.rule})"

    def check_names(self) -> None:
        """Raise a one-line error unless the dataset and the sampling rule are registered."""
        datasets.canonical(self.dataset)
        sampling_rules.canonical(self.rule)

    def overridden(self, text: str) -> CalibrationSpec:
        """This spec with ``DATASET:NxL[@SEED]`` (the ``--calibration`` option) in place of its
        dataset, sample count, length and (when given) seed; the rule stays."""
        m = re.fullmatch(r"([^:\s]+):(\d+)x(\d+)(?:@(\d+))?", text.strip())
        if m is None:
            raise InvalidSpecError(f"--calibration takes DATASET:NxL[@SEED] (e.g. wikitext2-valid-tokenized:8x512@0), got {text!r}")
        dataset, n, length, seed = m.groups()
        try:
            return replace(self, dataset=datasets.canonical(dataset), nsamples=int(n), seqlen=int(length),
                           seed=self.seed if seed is None else int(seed))
        except SparsebenchError as exc:
            raise InvalidSpecError(f"--calibration {text}: {exc}") from None


@dataclass(frozen=True)
class CalibrationText:
    """A text dataset's documents; ``join`` is set where they are the rows of one text."""

    dataset: str
    documents: tuple[str, ...]
    join: str | None  # None: independent documents, joined with "\n\n" where one text is needed

    def text(self) -> str:
        return ("\n\n" if self.join is None else self.join).join(self.documents)


Sampler = Callable[[CalibrationText, object, int, int, int], torch.Tensor]


@dataclass(frozen=True)
class SamplingRule:
    """How calibration windows are drawn: ``sample(text, tokenizer, nsamples, seqlen, seed)``."""

    name: str
    description: str
    sample: Sampler


sampling_rules: Registry[SamplingRule] = Registry("sampling-rule", entry_point_group="sparsebench.sampling_rules")


def sampling_rule(name: str) -> Callable[[Sampler], Sampler]:
    """Register a sampler under ``name`` (its docstring's first line describes it)."""

    def add(fn: Sampler) -> Sampler:
        sampling_rules.register(name, SamplingRule(name, (fn.__doc__ or "").strip().splitlines()[0], fn))
        return fn

    return add


def _tokens(tokenizer, text: str) -> torch.Tensor:
    return tokenizer(text, return_tensors="pt").input_ids[0]


@sampling_rule("reference")
def reference_windows(text: CalibrationText, tokenizer, nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    """The text tokenized whole; random.seed(seed); each window ids[i:i+seqlen], i = randint(0, ntokens-seqlen-1)."""
    ids = _tokens(tokenizer, text.text())
    if ids.numel() <= seqlen:
        raise InvalidSpecError(f"{text.dataset} has {ids.numel()} tokens, fewer than seqlen {seqlen} + 1")
    rng = random.Random(seed)
    starts = [rng.randint(0, ids.numel() - seqlen - 1) for _ in range(nsamples)]
    return torch.stack([ids[s : s + seqlen] for s in starts])


@sampling_rule("reference-documents")
def reference_documents(text: CalibrationText, tokenizer, nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    """Per sample: documents randint(0, ndocs-1) until one has more than seqlen tokens, then a random window of it."""
    rng = random.Random(seed)
    docs = text.documents
    samples: list[torch.Tensor] = []
    for _draw in range(1000 * nsamples):
        if len(samples) == nsamples:
            break
        ids = _tokens(tokenizer, docs[rng.randint(0, len(docs) - 1)])
        if ids.numel() > seqlen:
            s = rng.randint(0, ids.numel() - seqlen - 1)
            samples.append(ids[s : s + seqlen])
    if len(samples) < nsamples:
        raise InvalidSpecError(f"{text.dataset}: too few documents have more than {seqlen} tokens for {nsamples} samples")
    return torch.stack(samples)


@sampling_rule("documents")
def document_windows(text: CalibrationText, tokenizer, nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    """A random document longer than seqlen characters, a random window in it; rows of one text: reference windows."""
    rng = random.Random(seed)
    # documents long enough to hold a window (a token spans at least one character)
    long_docs = [d for d in text.documents if len(d) > seqlen]
    if text.join is not None or not long_docs:  # rows of one text, or documents too short for windows
        return reference_windows(text, tokenizer, nsamples, seqlen, seed)
    samples: list[torch.Tensor] = []
    for _draw in range(100 * nsamples):  # redraw until a document fits
        if len(samples) == nsamples:
            break
        ids = _tokens(tokenizer, rng.choice(long_docs))
        if ids.numel() > seqlen:
            s = rng.randint(0, ids.numel() - seqlen - 1)
            samples.append(ids[s : s + seqlen])
    if len(samples) < nsamples:
        # documents longer than seqlen characters but rarely seqlen tokens (LAMBADA at 512)
        return reference_windows(text, tokenizer, nsamples, seqlen, seed)
    return torch.stack(samples)


def calibration_text(dataset: str) -> tuple[CalibrationText, Resolved]:
    """The documents of a text dataset with its join, and where they came from."""
    docs, found = load_documents(dataset)
    return CalibrationText(found.asset, docs, datasets.get(found.asset).calibration_join), found


def sample_calibration(spec: CalibrationSpec, tokenizer, max_context: int | None = None) -> torch.Tensor:
    """``[nsamples, seqlen]`` token ids drawn reproducibly from ``spec.dataset`` by ``spec.rule``.

    For an image asset (``imagenet-samples``…) ``tokenizer`` is the model's image processor
    and the result is ``[nsamples, 3, H, W]`` pixel values (``seqlen`` and the rule are unused).
    """
    from .tasks.imagenet.data import is_image_asset, sample_image_batch

    if is_image_asset(spec.dataset):
        return sample_image_batch(spec.dataset, spec.nsamples, spec.seed, tokenizer)
    seqlen = min(spec.seqlen, max_context) if max_context else spec.seqlen
    text, _ = calibration_text(spec.dataset)
    return sampling_rules.get(spec.rule).sample(text, tokenizer, spec.nsamples, seqlen, spec.seed)
