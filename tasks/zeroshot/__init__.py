"""Zero-shot accuracy through lm-eval: the documents (:mod:`.data`), lm-eval's configs
(:mod:`.configs`) and the eight tasks (:mod:`.task`)."""

from .task import ZeroShotTask

__all__ = ["ZeroShotTask"]
