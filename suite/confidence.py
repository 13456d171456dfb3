"""Statistics of results: bootstrap intervals, paired comparisons and seed aggregation.

Per-item scores (:class:`~sparsebench.items.ItemScores`) in, intervals and p-values out; numpy
only, vectorized, seeded, so the same items always give the same interval.

**Interval of one metric.** A percentile bootstrap (Efron & Tibshirani, 1993): ``resamples``
draws of the items with replacement, the metric recomputed on each draw by its own aggregate
(a mean; for perplexity ``exp(total NLL / total tokens)`` over the drawn windows), and the
2.5th and 97.5th percentiles of the recomputed values.

**Several seeds.** Runs that differ only in seed score the same items, so item and seed
variation are crossed, not nested. Each resample draws the seeds with replacement and,
independently, one draw of the items shared by every seed; its value is the mean over the
drawn seeds of each seed's aggregate on the drawn items. With one seed this is the interval
above.

**Paired comparison of A and B** (Δ = B − A, on the same items). The interval is the paired
bootstrap: both arms are recomputed on the *same* item draw (seeds drawn per arm). The
p-value (two-sided) is McNemar's exact test when both arms are one run each with 0/1 items
(accuracies: the binomial test of the discordant pairs, ``scipy.stats.binomtest``; McNemar,
1947), and otherwise the paired bootstrap's: the fraction of resampled Δ at least as far from
the observed Δ as the observed Δ is from 0, ``(count + 1) / (resamples + 1)`` (Davison &
Hinkley, 1997, §4.4), measured on the aggregate's test scale: the metric itself for means, its
log for perplexity (the difference in mean NLL per token). That p-value is not invariant to a
monotone transform of the metric, and on the perplexity scale the exponential lets a few
high-loss windows spread the resampled Δ so wide that a collapsed model (perplexity in the
millions on every window) would not be distinguishable from one at 156. The interval stays on
the metric's own scale. A run compared with itself gives Δ = 0 and p = 1.

Not to be mixed with :mod:`sparsebench.stats`, the methods' calibration statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import SparsebenchError
from .items import AGGREGATES, ItemScores

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
CHUNK_ELEMENTS = 2_000_000  # resampled item scores held at once (bounds memory on large splits)
MCNEMAR = "McNemar exact"
BOOTSTRAP = "paired bootstrap"


class ComparisonError(SparsebenchError):
    """Two results cannot be compared (different items, versions or protocols)."""


@dataclass(frozen=True)
class Interval:
    """A percentile-bootstrap interval and how it was drawn."""

    low: float
    high: float
    level: float = LEVEL
    resamples: int = RESAMPLES
    seed: int = SEED


@dataclass(frozen=True)
class SeedSummary:
    """A metric over runs that differ only in seed."""

    mean: float
    sd: float  # sample standard deviation over seeds (0 for one seed)
    seeds: int
    interval: Interval


@dataclass(frozen=True)
class Comparison:
    """B − A on the same items."""

    a: float
    b: float
    delta: float
    interval: Interval
    p_value: float
    test: str  # MCNEMAR or BOOTSTRAP
    items: int


def _arms(arms: Sequence[Sequence[ItemScores]]) -> tuple[list[np.ndarray], list[np.ndarray | None], str, tuple[str, ...]]:
    """Scores ``[seeds, n]`` (and tokens) per arm, every run aligned to the first run's item order."""
    first = arms[0][0]
    ids, aggregate = first.ids, first.aggregate
    scores, tokens = [], []
    for arm in arms:
        if not arm:
            raise ComparisonError("a comparison arm holds no runs")
        for items in arm:
            if items.aggregate != aggregate:
                raise ComparisonError(f"the metrics aggregate differently ({aggregate} vs {items.aggregate})")
            if len(items.ids) != len(ids) or set(items.ids) != set(ids):
                extra = sorted(set(items.ids) ^ set(ids))
                raise ComparisonError(f"the runs scored different items ({len(ids)} vs {len(items.ids)}; e.g. item {extra[0]!r} "
                                      "is in only one)" if extra else "the runs scored different items")
        aligned = [items.aligned(ids).arrays() for items in arm]
        scores.append(np.stack([s for s, _ in aligned]))
        tokens.append(np.stack([t for _, t in aligned]) if aligned[0][1] is not None else None)
    return scores, tokens, aggregate, ids


def _resampled(arms: Sequence[Sequence[ItemScores]], resamples: int, seed: int) -> tuple[list[np.ndarray], list[float]]:
    """Each arm's value on ``resamples`` crossed draws (seeds per arm, items shared), and its observed value."""
    scores, tokens, aggregate, ids = _arms(arms)
    value = AGGREGATES[aggregate].value
    rng = np.random.default_rng(seed)
    n = len(ids)
    per_seed = [np.empty((s.shape[0], resamples)) for s in scores]  # [seeds, resamples]: each seed's value on each item draw
    rows = max(1, CHUNK_ELEMENTS // n)  # item draws do not depend on the number of seeds
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
        for k, (s, t) in enumerate(zip(scores, tokens)):
            per_seed[k][:, start:stop] = value(s[:, idx], None if t is None else t[:, idx])
    seed_draws = [rng.integers(0, s.shape[0], size=(resamples, s.shape[0])) for s in scores]  # after the items: k equal seeds give one run's interval
    stats = [np.take_along_axis(v.T, d, axis=1).mean(axis=1) for v, d in zip(per_seed, seed_draws)]
    observed = [float(value(s, t).mean()) for s, t in zip(scores, tokens)]
    return stats, observed


def _percentiles(stats: np.ndarray, level: float, resamples: int, seed: int) -> Interval:
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), level, resamples, seed)


def bootstrap_interval(items: ItemScores, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> Interval:
    """The percentile-bootstrap interval of one metric over its items."""
    return seed_summary([items], resamples, seed, level).interval


def seed_sd(values: Sequence[float]) -> float:
    """The sample standard deviation over seeds; exactly 0 when every seed gave the same value
    (the rounding of a mean of equal floats would otherwise show as 7e-17)."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if len(v) > 1 and v.max() != v.min() else 0.0


def seed_summary(runs: Sequence[ItemScores], resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> SeedSummary:
    """Mean, sd and number of seeds of runs that differ only in seed, with the crossed seed × item interval."""
    (stats,), (mean,) = _resampled([runs], resamples, seed)
    return SeedSummary(mean, seed_sd([r.value() for r in runs]), len(runs), _percentiles(stats, level, resamples, seed))


def mcnemar_exact(a: ItemScores, b: ItemScores) -> float:
    """Two-sided exact McNemar p-value of two 0/1 item sets on the same items."""
    from scipy.stats import binomtest

    if not (a.binary and b.binary):
        raise ComparisonError("McNemar's test needs 0/1 items (an accuracy)")
    sa, _ = a.arrays()
    sb, _ = b.aligned(a.ids).arrays()
    only_a, only_b = int(((sa == 1) & (sb == 0)).sum()), int(((sa == 0) & (sb == 1)).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_b, only_a + only_b, 0.5).pvalue)


def compare(a: Sequence[ItemScores], b: Sequence[ItemScores], resamples: int = RESAMPLES, seed: int = SEED,
            level: float = LEVEL) -> Comparison:
    """B − A for two arms of runs (one run each, or runs that differ only in seed) on the same items."""
    (sa, sb), (va, vb) = _resampled([a, b], resamples, seed)
    deltas, delta = sb - sa, vb - va
    interval = _percentiles(deltas, level, resamples, seed)
    if len(a) == 1 and len(b) == 1 and a[0].binary and b[0].binary:
        p, test = mcnemar_exact(a[0], b[0]), MCNEMAR
    else:
        scale = AGGREGATES[a[0].aggregate].test_scale
        shifts, shift = scale(sb) - scale(sa), float(scale(np.float64(vb)) - scale(np.float64(va)))
        far = np.abs(shifts - shift) >= abs(shift) - 1e-12 * max(1.0, abs(shift))
        p, test = float((far.sum() + 1) / (resamples + 1)), BOOTSTRAP
    return Comparison(va, vb, delta, interval, min(1.0, p), test, len(a[0].ids))
