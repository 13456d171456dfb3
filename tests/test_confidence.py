"""Statistics against known answers: bootstrap intervals, paired comparisons, McNemar's exact test, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from sparsebench.confidence import BOOTSTRAP, MCNEMAR, ComparisonError, bootstrap_interval, compare, mcnemar_exact, seed_summary
from sparsebench.items import ItemScores, ItemsError
from sparsebench.record import MetricRecord, RecordError


def binary(bits, ids=None) -> ItemScores:
    return ItemScores.of(ids if ids is not None else range(len(bits)), [float(b) for b in bits])


def test_interval_of_constant_items_is_the_value():
    iv = bootstrap_interval(ItemScores.of(range(20), [0.25] * 20))
    assert (iv.low, iv.high, iv.level, iv.resamples, iv.seed) == (0.25, 0.25, 0.95, 1000, 0)
    ppl = ItemScores.of(range(4), [126.0] * 4, [63] * 4, "perplexity")
    assert ppl.value() == pytest.approx(math.e**2)
    assert bootstrap_interval(ppl).low == pytest.approx(math.e**2) == bootstrap_interval(ppl).high


def test_interval_of_an_accuracy_matches_the_normal_approximation():
    items = binary([1, 0] * 200)  # p = 0.5, n = 400: half-width 1.96 * sqrt(0.25 / 400) = 0.049
    iv = bootstrap_interval(items, resamples=4000)
    assert iv.low == pytest.approx(0.5 - 0.049, abs=0.008) and iv.high == pytest.approx(0.5 + 0.049, abs=0.008)


def test_perplexity_interval_resamples_windows_on_total_nll_over_total_tokens():
    ppl = ItemScores.of(range(2), [10.0, 30.0], [10, 10], "perplexity")  # windows at exp(1) and exp(3)
    assert ppl.value() == pytest.approx(math.exp(2.0))
    iv = bootstrap_interval(ppl)
    assert iv.low == pytest.approx(math.e) and iv.high == pytest.approx(math.e**3)  # both windows drawn twice happen


def test_the_interval_is_seeded():
    items = binary(np.random.default_rng(3).random(60) < 0.4)
    assert bootstrap_interval(items, seed=5) == bootstrap_interval(items, seed=5)
    assert bootstrap_interval(items, seed=5) != bootstrap_interval(items, seed=6)


def test_a_known_difference_on_every_item():
    a = ItemScores.of(range(50), np.linspace(0.0, 0.5, 50))
    b = ItemScores.of(range(50), np.linspace(0.0, 0.5, 50) + 0.1)
    c = compare([a], [b])
    assert c.delta == pytest.approx(0.1) and c.interval.low == pytest.approx(0.1) and c.interval.high == pytest.approx(0.1)
    assert c.test == BOOTSTRAP and c.p_value == pytest.approx(1 / 1001)  # no resample reaches 0


def test_mcnemar_is_scipys_exact_binomial_test_on_the_discordant_pairs():
    # 3 documents only A gets right, 12 only B gets right, 85 both or neither
    a = [1] * 3 + [0] * 12 + [1] * 40 + [0] * 45
    b = [0] * 3 + [1] * 12 + [1] * 40 + [0] * 45
    p = mcnemar_exact(binary(a), binary(b))
    assert p == binomtest(12, 15, 0.5).pvalue == pytest.approx(2 * sum(math.comb(15, k) for k in range(12, 16)) / 2**15)
    c = compare([binary(a)], [binary(b)])
    assert c.test == MCNEMAR and c.p_value == p and c.delta == pytest.approx(0.09)
    assert c.interval.low < 0.09 < c.interval.high and c.interval.low > 0  # B is better on these items


@pytest.mark.parametrize("items", [binary([1, 0, 1, 1, 0, 0, 1]), ItemScores.of(range(3), [4.0, 5.0, 6.0], [2, 2, 2], "perplexity")])
def test_a_run_compared_with_itself(items):
    c = compare([items], [items])
    assert c.delta == 0.0 and c.p_value == 1.0 and c.interval.low == 0.0 == c.interval.high


def test_items_are_paired_by_id_not_position():
    a = binary([1, 0, 1, 0], ids=["d1", "d2", "d3", "d4"])
    b = binary([0, 1, 0, 1], ids=["d2", "d1", "d4", "d3"])  # the same scores, listed in another order
    assert compare([a], [b]).delta == 0.0 and compare([a], [b]).p_value == 1.0


def test_different_items_cannot_be_compared():
    with pytest.raises(ComparisonError, match="different items"):
        compare([binary([1, 0], ids=["a", "b"])], [binary([1, 0], ids=["a", "c"])])


def test_seeds_mean_sd_and_crossed_interval():
    runs = [binary([1, 1, 0, 0, 1, 0, 1, 0] * 5), binary([1, 0, 0, 0, 1, 0, 1, 0] * 5), binary([1, 1, 1, 0, 1, 0, 1, 0] * 5)]
    s = seed_summary(runs)
    values = [r.value() for r in runs]
    assert s.mean == pytest.approx(np.mean(values)) and s.sd == pytest.approx(np.std(values, ddof=1)) and s.seeds == 3
    assert s.interval.low < s.mean < s.interval.high
    same = seed_summary([runs[0]] * 3)  # three identical seeds: no seed variation, one run's interval
    one = bootstrap_interval(runs[0])
    assert same.sd == 0.0 and (same.interval.low, same.interval.high) == pytest.approx((one.low, one.high))


def test_seed_groups_compare_with_the_bootstrap():
    a = [binary([1, 0] * 20), binary([1, 1, 0, 0] * 10)]
    c = compare(a, a)
    assert c.test == BOOTSTRAP and c.delta == 0.0 and c.p_value == 1.0


def test_items_are_checked():
    with pytest.raises(ItemsError, match="unique"):
        ItemScores(("a", "a"), (1.0, 0.0))
    with pytest.raises(ItemsError, match="token counts"):
        ItemScores(("a",), (1.0,), None, "perplexity")
    with pytest.raises(RecordError, match="n is 3, but the items hold 2 items"):
        MetricRecord("t", "1", "acc", 0.5, True, None, 3, {}, binary([1, 0]), bootstrap_interval(binary([1, 0])))
    with pytest.raises(RecordError, match="is not the mean"):
        MetricRecord("t", "1", "acc", 0.75, True, None, 2, {}, binary([1, 0]), bootstrap_interval(binary([1, 0])))
    with pytest.raises(RecordError, match="interval exactly when"):
        MetricRecord("t", "1", "acc", 0.5, True, None, 2, {}, binary([1, 0]))


def test_metric_record_carries_the_interval_of_its_items():
    from sparsebench.task import Metric

    m = Metric("t", "acc", 0.5, True, "1", n=4, items=binary([1, 0, 1, 0]))
    rec = MetricRecord.of(m)
    assert rec.interval == bootstrap_interval(m.items)
    cols = rec.columns()
    assert (cols["ci_low"], cols["ci_high"], cols["ci_resamples"], cols["ci_seed"]) == (rec.interval.low, rec.interval.high, 1000, 0)
    assert MetricRecord.from_columns(cols) == rec


def test_seeds_that_agree_have_an_sd_of_exactly_zero():
    from sparsebench.confidence import seed_sd, seed_summary

    same = ItemScores.of(range(50), [float(i % 3 == 0) for i in range(50)])  # mean 0.34: 3 x 0.34 rounds away from 0
    assert seed_summary([same, same, same]).sd == 0.0 and seed_sd([0.38, 0.38, 0.38]) == 0.0
    assert seed_sd([0.3, 0.4]) == pytest.approx(0.0707107, abs=1e-6)


def test_perplexity_is_tested_on_the_log_scale():
    """Four windows, B far worse on every one (NLL 15-20 nats per token against 5): on the
    perplexity scale the exponential spreads the resampled Δ so wide that p would exceed 0.05;
    on the log scale (mean NLL per token) no resample comes near 0. The interval stays in perplexity."""
    tokens = [100, 100, 100, 100]
    a = ItemScores.of(range(4), [500.0] * 4, tokens, aggregate="perplexity")
    b = ItemScores.of(range(4), [1500.0, 1600.0, 1700.0, 2000.0], tokens, aggregate="perplexity")
    c = compare([a], [b])
    assert c.test == BOOTSTRAP and c.p_value == pytest.approx(1 / 1001)
    assert c.delta == pytest.approx(np.exp(17) - np.exp(5)) and c.interval.low > 0
    deltas = np.array([np.exp(np.mean(np.array([15, 16, 17, 20])[np.random.default_rng(k).integers(0, 4, 4)])) for k in range(1000)])
    assert np.mean(np.abs(deltas - np.exp(17)) >= np.exp(17)) > 0.05  # what the perplexity scale would give
