"""ImageNet-1k classification: image sets and the class index (:mod:`.data`) and the tasks (:mod:`.task`).

Image preprocessing belongs to the model (:mod:`sparsebench.images`), as a tokenizer does."""

from .task import ImageNetClassification

__all__ = ["ImageNetClassification"]
