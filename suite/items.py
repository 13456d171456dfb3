"""Per-item results: the scores a metric is computed from, one per document, window, query or image.

A metric's value is an *aggregate* of its items, so the same items give its interval
(:mod:`sparsebench.confidence`) and paired comparisons between two runs on the same items:

- ``mean``: the mean of the item scores (accuracy: 0/1 per document or image; nDCG@10 or
  RR@10 per query); ``n`` is the number of items;
- ``perplexity``: ``exp(sum of NLL / sum of tokens)`` over windows, each item holding its
  window's NLL sum (``scores``) and predicted-token count (``tokens``); ``n`` is the number of
  tokens, as the perplexity task records it.

Items are stored with their metric as one JSON value (:meth:`ItemScores.payload`) and checked
whenever a record is built (:meth:`ItemScores.check`): lengths, unique ids, finite scores,
``n`` and the value consistent with the items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import SparsebenchError

VALUE_RTOL = 1e-6  # the stored value and the aggregate of its items agree to this relative tolerance


class ItemsError(SparsebenchError):
    """Per-item scores are malformed or disagree with their metric."""


@dataclass(frozen=True)
class Aggregate:
    """How a metric's value follows from its items; the functions work on ``[..., n]`` arrays."""

    name: str
    value: Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (scores, tokens) -> value over the last axis
    needs_tokens: bool
    describe: str
    test_scale: Callable[[np.ndarray], np.ndarray] = np.asarray  # where a paired test measures distances (confidence.compare)


def _mean(scores: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    return scores.mean(axis=-1)


def _perplexity(scores: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    assert tokens is not None
    return np.exp(scores.sum(axis=-1) / tokens.sum(axis=-1))


AGGREGATES: Mapping[str, Aggregate] = MappingProxyType({
    a.name: a for a in (
        Aggregate("mean", _mean, False, "mean of the item scores"),
        Aggregate("perplexity", _perplexity, True, "exp(total NLL / total tokens) over windows", np.log),
    )
})


@dataclass(frozen=True)
class ItemScores:
    """The items of one metric, in the order they were evaluated."""

    ids: tuple[str, ...]
    scores: tuple[float, ...]
    tokens: tuple[int, ...] | None = None  # perplexity: predicted tokens per window
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        agg = AGGREGATES.get(self.aggregate)
        if agg is None:
            raise ItemsError(f"items aggregate {self.aggregate!r} is not one of {sorted(AGGREGATES)}")
        if len(self.ids) != len(self.scores) or len(self.ids) == 0:
            raise ItemsError(f"items need one score per id and at least one item ({len(self.ids)} ids, {len(self.scores)} scores)")
        if not all(isinstance(i, str) and i for i in self.ids):
            raise ItemsError("item ids must be non-empty strings")
        if len(set(self.ids)) != len(self.ids):
            raise ItemsError("item ids must be unique")
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in self.scores):
            raise ItemsError("item scores must be finite numbers")
        if agg.needs_tokens != (self.tokens is not None):
            raise ItemsError(f"the {self.aggregate!r} aggregate {'needs' if agg.needs_tokens else 'takes no'} per-item token counts")
        if self.tokens is not None and (len(self.tokens) != len(self.ids)
                                        or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in self.tokens)):
            raise ItemsError("items need one positive integer token count per id")

    @classmethod
    def of(cls, ids: Any, scores: Any, tokens: Any = None, aggregate: str = "mean") -> ItemScores:
        """Items from any sequences (lists, arrays, tensors): ids as strings, scores as floats."""
        return cls(tuple(str(i) for i in ids), tuple(float(s) for s in np.asarray(scores, dtype=np.float64).ravel()),
                   None if tokens is None else tuple(int(t) for t in np.asarray(tokens).ravel()), aggregate)

    @property
    def n(self) -> int:
        """What the metric's ``n`` counts: items, or tokens for perplexity."""
        return sum(self.tokens) if self.tokens is not None else len(self.ids)

    @property
    def binary(self) -> bool:
        """Every score is 0 or 1 and the value is their mean (an accuracy)."""
        return self.aggregate == "mean" and all(s in (0.0, 1.0) for s in self.scores)

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        return np.asarray(self.scores, dtype=np.float64), None if self.tokens is None else np.asarray(self.tokens, dtype=np.float64)

    def value(self) -> float:
        """The metric's value from its items."""
        scores, tokens = self.arrays()
        return float(AGGREGATES[self.aggregate].value(scores, tokens))

    def aligned(self, ids: tuple[str, ...]) -> ItemScores:
        """These items in the order of ``ids`` (the same set of ids)."""
        if ids == self.ids:
            return self
        pos = {i: k for k, i in enumerate(self.ids)}
        order = [pos[i] for i in ids]
        return ItemScores(ids, tuple(self.scores[k] for k in order),
                          None if self.tokens is None else tuple(self.tokens[k] for k in order), self.aggregate)

    def check(self, value: float, n: int | None, where: str) -> None:
        """:class:`ItemsError` unless ``n`` and ``value`` are what these items give."""
        if n is not None and n != self.n:
            unit = "tokens" if self.tokens is not None else "items"
            raise ItemsError(f"{where}: n is {n}, but the items hold {self.n} {unit}")
        got = self.value()
        if not math.isclose(got, value, rel_tol=VALUE_RTOL, abs_tol=1e-12):
            raise ItemsError(f"{where}: the value {value!r} is not the {AGGREGATES[self.aggregate].describe} ({got!r})")

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"aggregate": self.aggregate, "ids": list(self.ids), "scores": list(self.scores)}
        if self.tokens is not None:
            out["tokens"] = list(self.tokens)
        return out

    @classmethod
    def from_payload(cls, data: Any) -> ItemScores:
        """Items from a stored :meth:`payload`; :class:`ItemsError` if malformed."""
        if not isinstance(data, Mapping) or not {"aggregate", "ids", "scores"} <= set(data) <= {"aggregate", "ids", "scores", "tokens"}:
            raise ItemsError("items are {aggregate, ids, scores[, tokens]}")
        ids, scores, tokens = data["ids"], data["scores"], data.get("tokens")
        if not isinstance(ids, list) or not isinstance(scores, list) or not (tokens is None or isinstance(tokens, list)):
            raise ItemsError("items ids, scores and tokens must be lists")
        if not isinstance(data["aggregate"], str):
            raise ItemsError("items aggregate must be a string")
        return cls(tuple(ids), tuple(scores), None if tokens is None else tuple(tokens), data["aggregate"])
