"""The timing function: loop rules, statistics, thread handling (no absolute times asserted)."""

from __future__ import annotations

import time

import pytest
import torch

from sparsebench.errors import InvalidSpecError
from sparsebench.timing import Timing, TimingConfig, measure


def test_runs_warmup_then_at_least_min_iters():
    calls = []
    t = measure(lambda: calls.append(1), TimingConfig(warmup=3, min_iters=7, min_time_s=0.0))
    assert t.iterations == 7 and len(calls) == 10
    assert t.clock == "perf_counter" and t.device == "cpu"


def test_keeps_going_until_min_time():
    t = measure(lambda: time.sleep(0.01), TimingConfig(warmup=0, min_iters=1, min_time_s=0.05))
    assert t.total >= 0.05 and t.iterations >= 2  # each sleep is at least 10 ms, so 2..5 calls


def test_max_iters_stops_the_loop():
    t = measure(lambda: None, TimingConfig(warmup=0, min_iters=1, min_time_s=60.0, max_iters=50))
    assert t.iterations == 50


def test_statistics():
    t = Timing(tuple(float(i) for i in range(1, 12)), 1, "cpu", "perf_counter")
    assert t.median == 6.0 and t.p10 == pytest.approx(2.0) and t.p90 == pytest.approx(10.0)
    assert Timing((3.0,), 1, "cpu", "perf_counter").p90 == 3.0
    assert Timing((1.0, 2.0), 1, "cpu", "perf_counter").quantile(0.5) == 1.5


def test_threads_fixed_recorded_and_restored():
    before = torch.get_num_threads()
    seen = []
    t = measure(lambda: seen.append(torch.get_num_threads()), TimingConfig(warmup=1, min_iters=2, min_time_s=0.0, threads=1))
    assert t.threads == 1 and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_setup_is_not_timed():
    t = measure(lambda state: state, TimingConfig(warmup=0, min_iters=3, min_time_s=0.0), setup=lambda: time.sleep(0.02))
    assert t.iterations == 3 and t.median < 0.02


def test_invalid_config():
    with pytest.raises(InvalidSpecError):
        TimingConfig(min_iters=0)
    with pytest.raises(InvalidSpecError):
        TimingConfig(min_iters=10, max_iters=5)


@pytest.mark.gpu
def test_cuda_events_clock():
    x = torch.randn(512, 512, device="cuda")
    t = measure(lambda: x @ x, TimingConfig(warmup=1, min_iters=5, min_time_s=0.0), device="cuda")
    assert t.clock == "cuda-events" and t.iterations == 5 and t.median > 0
