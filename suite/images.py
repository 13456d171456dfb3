"""Images: ImageNet-style image sets (whatever source they resolved from) and preprocessing.

An image set is a fixed, ordered list of ``(path, label)``. Labels follow the standard
ImageNet-1k index: the position of the class's WordNet id (wnid) in the sorted list of the
1,000 wnids. Two on-disk layouts are read:

* ``imagenet-wnid-files``: one folder of ``<wnid>_<anything>.JPEG`` files (the offline
  ``imagenet-samples`` set: one training image per class);
* ``image-folder``: the usual ``<root>/<wnid>/*.JPEG`` layout of the validation set.

Preprocessing always comes from the model: a transformers image processor for hub models,
or :class:`ImagePreprocess` (resize shorter side, centre crop, normalize) built from the
model's own configuration. Only PIL and torch are used (no torchvision).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from .data import Resolved, datasets, resolve
from .errors import InvalidSpecError

IMAGE_FORMATS = ("imagenet-wnid-files", "image-folder")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
NUM_CLASSES = 1000


@dataclass(frozen=True)
class ImageExample:
    path: Path
    label: int  # ImageNet-1k class index
    wnid: str


class ImageProcessor(Protocol):
    """Turns PIL images into a ``[B, 3, H, W]`` float tensor; ``describe`` is recorded."""

    def __call__(self, images: Sequence[Any]) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize the shorter side to ``round(size / crop_pct)``, centre-crop ``size``, normalize.

    ``mean`` / ``std`` are on the 0..1 scale, per RGB channel.
    """

    size: int
    crop_pct: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"

    def one(self, image: Any) -> torch.Tensor:
        from PIL import Image

        img = image.convert("RGB")
        short = round(self.size / self.crop_pct)
        w, h = img.size
        scale = short / min(w, h)
        resample = Image.BICUBIC if self.interpolation == "bicubic" else Image.BILINEAR
        img = img.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))), resample)
        w, h = img.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        x = x.permute(2, 0, 1).float().div_(255.0)
        return (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)

    def __call__(self, images: Sequence[Any]) -> torch.Tensor:
        return torch.stack([self.one(im) for im in images])

    def describe(self) -> dict[str, Any]:
        return {"kind": "resize-crop-normalize", **asdict(self)}


@dataclass(frozen=True)
class HFImageProcessor:
    """A transformers image processor (its PIL backend when torchvision is absent)."""

    processor: Any

    def __call__(self, images: Sequence[Any]) -> torch.Tensor:
        rgb = [im.convert("RGB") for im in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"]

    def describe(self) -> dict[str, Any]:
        keys = ("size", "crop_size", "crop_pct", "resample", "image_mean", "image_std", "do_center_crop", "do_resize")
        d = {"kind": type(self.processor).__name__, **{k: getattr(self.processor, k, None) for k in keys}}
        # plain JSON (size dicts are dataclasses in transformers 5, enums print as their names)
        return json.loads(json.dumps(d, default=lambda o: asdict(o) if is_dataclass(o) else str(o)))


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


def logits_of(output: Any) -> torch.Tensor:
    """Class logits from a plain module (a tensor) or a transformers output (``.logits``)."""
    return output.logits if hasattr(output, "logits") else output
