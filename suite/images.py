"""Image preprocessing: the model's processor, turning PIL images into a pixel batch.

Preprocessing always comes from the model, as a tokenizer does: a transformers image processor
for hub models, or :class:`ImagePreprocess` (resize shorter side, centre crop, normalize) built
from the model's own configuration by its loader. Calibration and every image task feed images
through it. Only PIL and torch are used (no torchvision).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Literal, Protocol

import torch


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

