"""Learned-sparse retrieval: retrieval sets (:mod:`.data`), SPLADE encoding (:mod:`.encoding`),
the inverted index (:mod:`.index`), IR metrics (:mod:`.metrics`) and the tasks (:mod:`.task`)."""

from .task import SparseRetrieval

__all__ = ["SparseRetrieval"]
