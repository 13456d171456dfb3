"""ImageNet-1k classification on fixed, named subsets: top-1, top-5 and agreement with dense.

Protocol: the subset's images in their fixed order (sorted file names), preprocessed by the
model's own processor, classified in batches; top-1 / top-5 accuracy against the standard
ImageNet-1k index, with the binomial standard error of top-1 and each image's hit (0/1, by
``wnid/file name``) as the metric's items.

**Agreement with the dense model** (the fraction of images whose top-1 class is unchanged by
pruning) needs the dense model's predictions, which no longer exist in memory once a Task
sees the pruned model. The task therefore reloads the *unpruned* weights of exactly the
loaded revision (``load_model(loaded.entry)``), predicts once, and caches the predictions
on disk keyed by model name + weights revision + subset + its content revision +
preprocessing + task version. Later runs of any method on the same model and subset read
the cache. This keeps the Task self-contained (no dependence on a dense run having been
stored first, or on the database at all), and the key makes a stale cache impossible
whenever weights, data or protocol change.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sparsebench.errors import SparsebenchError
from sparsebench.items import ItemScores
from sparsebench.logs import progress_bars
from sparsebench.models import LoadedModel, cache_dir, load_model
from sparsebench.task import Metric, Task, TaskMeta, register_task

from .data import ImageExample, load_image_set, open_images


@dataclass(frozen=True)
class ImageNetSettings:
    batch_size: int = 32
    max_images: int | None = None  # None: the whole subset; else its first N images (fixed order)


def logits_of(output: Any) -> torch.Tensor:
    """Class logits from a plain module (a tensor) or a transformers output (``.logits``)."""
    return output.logits if hasattr(output, "logits") else output


@torch.no_grad()
def predict_top5(loaded: LoadedModel, examples: tuple[ImageExample, ...], batch_size: int, progress: bool, desc: str) -> torch.Tensor:
    """``[N, 5]`` class indices, best first, of ``loaded`` on ``examples``."""
    from tqdm.auto import tqdm

    model = loaded.model
    dtype = next(model.parameters()).dtype
    out = []
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, disable=not progress, leave=False, unit="batch"):
        pixels = loaded.processor(open_images(examples[start : start + batch_size]))
        logits = logits_of(model(pixels.to(loaded.device, dtype))).float()
        out.append(logits.topk(5, dim=-1).indices.cpu())
    return torch.cat(out) if out else torch.empty(0, 5, dtype=torch.long)


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ImageNetClassification(Task):
    """Top-1 / top-5 / dense agreement on one named ImageNet-1k subset (an image asset)."""

    Settings = ImageNetSettings
    asset: str

    def _examples(self) -> tuple[tuple[ImageExample, ...], str, str]:
        examples, found = load_image_set(self.asset)
        n = self.settings.max_images
        return (examples[:n] if n is not None else examples), found.revision, found.source.describe()

    def dense_cache_path(self, loaded: LoadedModel, data_revision: str, n: int) -> Path:
        key = {
            "model": loaded.entry.name, "revision": loaded.revision, "dataset": self.asset,
            "dataset_revision": data_revision, "images": n, "preprocess": loaded.processor.describe(),
            "task": self.meta.name, "task_version": self.meta.version, "dtype": str(next(loaded.model.parameters()).dtype),
        }
        h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        return cache_dir() / "dense-predictions" / f"{self.meta.name}-{h}.pt"

    def dense_top1(self, loaded: LoadedModel, examples: tuple[ImageExample, ...], data_revision: str, progress: bool) -> tuple[torch.Tensor, bool]:
        """Dense top-1 predictions (from the cache, or by reloading the unpruned weights)."""
        path = self.dense_cache_path(loaded, data_revision, len(examples))
        if path.is_file():
            return torch.load(path, weights_only=True)["top1"], True
        with progress_bars(progress):
            dense = load_model(loaded.entry, loaded.device, str(next(loaded.model.parameters()).dtype).removeprefix("torch."))
        if dense.revision != loaded.revision:  # the weights changed between the two loads
            raise SparsebenchError(f"dense reference revision {dense.revision} != evaluated {loaded.revision}")
        top1 = predict_top5(dense, examples, self.settings.batch_size, progress, f"{self.meta.name} (dense reference)")[:, 0]
        del dense
        _atomic_save({"top1": top1, "model": loaded.entry.name, "revision": loaded.revision}, path)
        return top1, False

    def evaluate(self, loaded: LoadedModel, progress: bool = True) -> list[Metric]:
        examples, data_revision, source = self._examples()
        labels = torch.tensor([ex.label for ex in examples])
        top5 = predict_top5(loaded, examples, self.settings.batch_size, progress, self.meta.name)
        n = len(examples)
        top1_hits = (top5[:, 0] == labels).float()
        top5_hits = (top5 == labels[:, None]).any(dim=1).float()
        dense, cached = self.dense_top1(loaded, examples, data_revision, progress)
        agree = (top5[:, 0] == dense).float()
        details = {
            "dataset": self.asset, "dataset_revision": data_revision, "dataset_source": source,
            "images": n, "preprocess": loaded.processor.describe(),
        }

        def se(x: torch.Tensor) -> float:
            p = float(x.mean())
            return math.sqrt(p * (1 - p) / n) if n else float("nan")

        ids = [ex.item_id for ex in examples]

        def items(hits: torch.Tensor) -> ItemScores | None:
            return ItemScores.of(ids, hits.double().numpy()) if n else None

        def mean(hits: torch.Tensor) -> float:
            return items(hits).value() if n else float("nan")

        return [
            self.metric("top1", mean(top1_hits), stderr=se(top1_hits), n=n, details=details, items=items(top1_hits)),
            self.metric("top5", mean(top5_hits), stderr=se(top5_hits), n=n, details=details, items=items(top5_hits)),
            self.metric("top1_agreement", mean(agree), stderr=se(agree), n=n, items=items(agree),
                        details={**details, "dense_reference": "cache" if cached else "computed", "dense_top1": float((dense == labels).float().mean())}),
        ]


@register_task
class ImageNetSamples(ImageNetClassification):
    """1,000 ImageNet-1k images, one per class (offline; training images, so accuracy reads high)."""

    asset = "imagenet-samples"
    meta = TaskMeta("imagenet-samples", "1", "top1", True, "image-classification", "imagenet-samples",
                    "top-1/top-5 and dense top-1 agreement on 1,000 ImageNet-1k images, one per class")


@register_task
class ImageNetVal(ImageNetClassification):
    """The ImageNet-1k validation set (50,000 images, ImageFolder layout)."""

    asset = "imagenet-val"
    meta = TaskMeta("imagenet-val", "1", "top1", True, "image-classification", "imagenet-val",
                    "top-1/top-5 and dense top-1 agreement on the ILSVRC-2012 validation set")
