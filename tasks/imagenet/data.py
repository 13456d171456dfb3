"""ImageNet-style image sets: their assets, readers and the ImageNet-1k class index.

An image set is a fixed, ordered list of ``(path, label)``. Labels follow the standard
ImageNet-1k index: the position of the class's WordNet id (wnid) in the sorted list of the
1,000 wnids. Two on-disk layouts are read:

* ``imagenet-wnid-files``: one folder of ``<wnid>_<anything>.JPEG`` files (the offline
  ``imagenet-samples`` set: one training image per class);
* ``image-folder``: the usual ``<root>/<wnid>/*.JPEG`` layout of the validation set.

Calibration of image models draws its batches from these sets too (:func:`sample_image_batch`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from sparsebench.data import Asset, Resolved, data_dir_source, datasets, resolve
from sparsebench.errors import InvalidSpecError
from sparsebench.images import ImageProcessor

IMAGE_FORMATS = ("imagenet-wnid-files", "image-folder")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
NUM_CLASSES = 1000


@dataclass(frozen=True)
class ImageExample:
    path: Path
    label: int  # ImageNet-1k class index
    wnid: str

    @property
    def item_id(self) -> str:
        """The image's id among a set's items: ``wnid/file name``."""
        return f"{self.wnid}/{self.path.name}"


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def _wnid_files(path: Path) -> list[tuple[Path, str]]:
    return [(p, p.name.split("_", 1)[0]) for p in sorted(path.iterdir()) if _is_image(p)]


def _image_folder(path: Path) -> list[tuple[Path, str]]:
    return [(p, d.name) for d in sorted(path.iterdir()) if d.is_dir() for p in sorted(d.iterdir()) if _is_image(p)]


_READERS = {"imagenet-wnid-files": _wnid_files, "image-folder": _image_folder}


@lru_cache(maxsize=8)
def load_image_set(asset: str) -> tuple[tuple[ImageExample, ...], Resolved]:
    """The fixed, ordered examples of an image asset and where they came from (cached)."""
    found = resolve(asset)
    if found.fmt not in _READERS:
        raise InvalidSpecError(f"{asset!r} is not an image set (format {found.fmt!r})")
    files = _READERS[found.fmt](found.path)
    wnids = sorted({w for _, w in files})
    if len(wnids) != NUM_CLASSES:
        raise InvalidSpecError(
            f"{asset!r} at {found.path} covers {len(wnids)} classes; the ImageNet-1k index needs all {NUM_CLASSES} wnids"
        )
    index = {w: i for i, w in enumerate(wnids)}
    return tuple(ImageExample(p, index[w], w) for p, w in files), found


def is_image_asset(name: str) -> bool:
    """Whether a registered dataset is an image set (decided by its declared formats)."""
    return name in datasets and all(s.fmt in IMAGE_FORMATS for s in datasets.get(name).sources)


def open_images(examples: Sequence[ImageExample]) -> list[Any]:
    from PIL import Image

    out = []
    for ex in examples:
        with Image.open(ex.path) as im:
            im.load()
            out.append(im.copy())
    return out


def sample_image_batch(asset: str, nsamples: int, seed: int, processor: ImageProcessor) -> torch.Tensor:
    """``[nsamples, 3, H, W]`` calibration images drawn reproducibly (without replacement)."""
    examples, _ = load_image_set(asset)
    if nsamples > len(examples):
        raise InvalidSpecError(f"{asset!r} has {len(examples)} images, fewer than nsamples {nsamples}")
    picked = random.Random(seed).sample(range(len(examples)), nsamples)
    return processor(open_images([examples[i] for i in picked]))


datasets.register("imagenet-samples", Asset(
    "imagenet-samples",
    "1,000 ImageNet-1k images, one training image per class, files named <wnid>_<name>.JPEG",
    (data_dir_source("imagenet-samples", "imagenet-wnid-files"),),
    hint="point $SPARSEBENCH_DATA_DIR at a folder holding imagenet-samples/ (the project's shared data)",
))
datasets.register("imagenet-val", Asset(
    "imagenet-val",
    "ImageNet-1k (ILSVRC-2012) validation set, 50,000 images in <wnid>/ folders",
    (data_dir_source("imagenet/val", "image-folder"),),
    hint="extract ILSVRC2012_img_val into $SPARSEBENCH_DATA_DIR/imagenet/val/<wnid>/*.JPEG (ImageNet terms of access)",
))
datasets.register("imagenet-train", Asset(
    "imagenet-train",
    "ImageNet-1k (ILSVRC-2012) training set in <wnid>/ folders (calibration images for the paper suite)",
    (data_dir_source("imagenet/train", "image-folder"),),
    hint="extract ILSVRC2012_img_train into $SPARSEBENCH_DATA_DIR/imagenet/train/<wnid>/*.JPEG (ImageNet terms of access)",
))
