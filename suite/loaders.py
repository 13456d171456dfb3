"""Loaders per model kind (registered in :data:`sparsebench.models.loaders`)."""

from __future__ import annotations

import torch

from .adapters import ImageAdapter, LanguageModelAdapter, language_adapter
from .data import Resolved
from .models import LoadedModel, ModelEntry, hf_folder, loaders


@loaders.register("causal-lm")
def load_causal_lm(entry: ModelEntry, found: Resolved, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """A causal LM from an HF folder or GGUF weights (converted once), with its family's adapter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = hf_folder(found)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    return LoadedModel(entry, model, tok, found.revision, found.source.describe(), language_adapter(model), device)


@loaders.register("masked-lm")
def load_masked_lm(entry: ModelEntry, found: Resolved, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(found.path)
    model = AutoModelForMaskedLM.from_pretrained(found.path, dtype=dtype).to(device)
    # inference-free sparse encoders (OpenSearch) ship per-token query weights as idf.json
    extras = {"query_idf": found.path / "idf.json"} if (found.path / "idf.json").is_file() else {}
    return LoadedModel(entry, model, tok, found.revision, found.source.describe(), LanguageModelAdapter(), device, extras)


# --- image classification ---

# EfficientNet-Lite reference preprocessing (TensorFlow efficientnet/lite): bicubic resize,
# centre crop with 32 px padding (224/256 = 0.875), (x - 127) / 128 on the 0..255 scale.
_LITE_MEAN = (127.0 / 255,) * 3
_LITE_STD = (128.0 / 255,) * 3


def _efficientnet_lite(found: Resolved):
    """EfficientNet-Lite from its state-dict file; the variant is the file name's prefix."""
    from efficientnet_lite_pytorch import EfficientNet  # plain torch; no torchvision needed

    from .images import ImagePreprocess

    variant = "-".join(found.path.name.split("-")[:2])  # efficientnet-lite0-57934424.pth
    model = EfficientNet.from_name(variant)
    model.load_state_dict(torch.load(found.path, map_location="cpu", weights_only=True))
    size = model._global_params.image_size
    return model, ImagePreprocess(size, 0.875, _LITE_MEAN, _LITE_STD, "bicubic")


def _hf_image_classifier(found: Resolved):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from .images import HFImageProcessor

    processor = AutoImageProcessor.from_pretrained(found.path)
    return AutoModelForImageClassification.from_pretrained(found.path), HFImageProcessor(processor)


@loaders.register("image-classification")
def load_image_classifier(entry: ModelEntry, found: Resolved, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """Image classifiers: an HF folder, or an EfficientNet-Lite state dict (``efficientnet-lite-pth``).

    ``processor`` is an :class:`~sparsebench.images.ImageProcessor` built from the model's own
    configuration; the adapter prunes convolutions as well as linear layers.
    """
    from .errors import SparsebenchError

    build = {"hf-folder": _hf_image_classifier, "efficientnet-lite-pth": _efficientnet_lite}.get(found.fmt)
    if build is None:
        raise SparsebenchError(f"cannot load an image classifier from format {found.fmt!r}")
    model, processor = build(found)
    model = model.to(device=device, dtype=dtype)
    return LoadedModel(entry, model, processor, found.revision, found.source.describe(), ImageAdapter(include_conv=entry.include_conv), device)
