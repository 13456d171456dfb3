"""The timing function: loop rules, statistics, thread handling, cache regimes (no absolute times asserted)."""

from __future__ import annotations

import time

import pytest
import torch

from sparsebench.cache import Evictor, Rotation, cpu_llc_bytes
from sparsebench.errors import InvalidSpecError
from sparsebench.timing import Timing, TimingConfig, measure

HOT = dict(cache="hot")


def test_runs_warmup_then_at_least_min_iters():
    calls = []
    t = measure(lambda: calls.append(1), TimingConfig(warmup=3, min_iters=7, min_time_s=0.0, **HOT))
    assert t.iterations == 7 and len(calls) == 10
    assert t.clock == "perf_counter" and t.device == "cpu"


def test_keeps_going_until_min_time():
    t = measure(lambda: time.sleep(0.01), TimingConfig(warmup=0, min_iters=1, min_time_s=0.05, **HOT))
    assert t.total >= 0.05 and t.iterations >= 2  # each sleep is at least 10 ms, so 2..5 calls


def test_max_iters_stops_the_loop():
    t = measure(lambda: None, TimingConfig(warmup=0, min_iters=1, min_time_s=60.0, max_iters=50, **HOT))
    assert t.iterations == 50


def test_statistics():
    t = Timing(tuple(float(i) for i in range(1, 12)), 1, "cpu", "perf_counter")
    assert t.median == 6.0 and t.p10 == pytest.approx(2.0) and t.p90 == pytest.approx(10.0)
    assert Timing((3.0,), 1, "cpu", "perf_counter").p90 == 3.0
    assert Timing((1.0, 2.0), 1, "cpu", "perf_counter").quantile(0.5) == 1.5


def test_threads_fixed_recorded_and_restored():
    before = torch.get_num_threads()
    seen = []
    t = measure(lambda: seen.append(torch.get_num_threads()), TimingConfig(warmup=1, min_iters=2, min_time_s=0.0, threads=1, **HOT))
    assert t.threads == 1 and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_setup_is_not_timed():
    t = measure(lambda state: state, TimingConfig(warmup=0, min_iters=3, min_time_s=0.0, **HOT), setup=lambda: time.sleep(0.02))
    assert t.iterations == 3 and t.median < 0.02


def test_invalid_config():
    with pytest.raises(InvalidSpecError):
        TimingConfig(min_iters=0)
    with pytest.raises(InvalidSpecError):
        TimingConfig(min_iters=10, max_iters=5)
    with pytest.raises(InvalidSpecError, match="cache regime"):
        TimingConfig(cache="warm")
    with pytest.raises(InvalidSpecError, match="threads"):
        TimingConfig(threads=0)


class _Recorder:
    """Stands in for an Evictor: records when it runs, and takes 20 ms so a timed eviction would show."""

    def __init__(self, log):
        self.log = log

    def __call__(self):
        self.log.append("evict")
        time.sleep(0.02)

    def describe(self):
        return {"evict_bytes": 0, "cache_size_from": "test"}


def test_cold_evicts_after_setup_before_each_timed_call_and_outside_the_timer():
    log = []
    t = measure(lambda s: log.append("call"), TimingConfig(warmup=2, min_iters=3, min_time_s=0.0), setup=lambda: log.append("setup"),
                evictor=_Recorder(log))
    assert log == ["setup", "call"] * 2 + ["setup", "evict", "call"] * 3  # warm-up calls are not preceded by an eviction
    assert t.cache == "cold" and t.extra["cache_size_from"] == "test"
    assert t.median < 0.02  # the 20 ms eviction is not in the samples


def test_hot_never_evicts():
    log = []
    t = measure(lambda: log.append("call"), TimingConfig(warmup=1, min_iters=3, min_time_s=0.0, cache="hot"), evictor=_Recorder(log))
    assert "evict" not in log and t.cache == "hot" and t.extra == {}


def test_cold_loop_counts_wall_time_so_tiny_calls_end():
    log = []
    t = measure(lambda: None, TimingConfig(warmup=0, min_iters=1, min_time_s=0.05), evictor=_Recorder(log))
    assert 2 <= t.iterations <= 4  # 20 ms evictions: 0.05 s of wall time after 3 calls, not thousands


def test_cold_makes_its_own_evictor_of_the_configured_size():
    t = measure(lambda: None, TimingConfig(warmup=0, min_iters=2, min_time_s=0.0, evict_bytes=2**20))
    assert t.cache == "cold" and t.extra["evict_bytes"] == 2**20


def test_evictor_reads_a_buffer_of_the_given_size():
    ev = Evictor("cpu", 4096)
    ev()
    assert ev.buffer.numel() == 1024 and ev.describe() == {"cold_by": "eviction", "evict_bytes": 4096, "cache_size_from": "given"}
    size, source = cpu_llc_bytes()
    assert size > 0 and source
    with pytest.raises(InvalidSpecError):
        Evictor("cpu", 0)


def test_rotation_cycles_through_enough_copies():
    made = []
    rot = Rotation(lambda: made.append(len(made)) or len(made) - 1, bytes_each=300, nbytes=1000)
    assert made == [0, 1, 2, 3, 4]  # ceil(1000 / 300) + 1: a copy is read again only after 1200 bytes of others
    seen = []
    t = measure(lambda: seen.append(rot.current), TimingConfig(warmup=0, min_iters=7, min_time_s=0.0), evictor=rot)
    assert seen == [1, 2, 3, 4, 0, 1, 2] and t.extra == {"cold_by": "rotation", "copies": 5, "rotated_bytes": 1500,
                                                          "cache_size_from": "given"}


def _cache_dir(root, name, level, kind, size):
    d = root / name
    d.mkdir()
    (d / "level").write_text(f"{level}\n")
    (d / "type").write_text(f"{kind}\n")
    (d / "size").write_text(f"{size}\n")


def test_llc_from_sysfs_takes_the_highest_data_level(tmp_path):
    _cache_dir(tmp_path, "index0", 1, "Data", "48K")
    _cache_dir(tmp_path, "index1", 1, "Instruction", "32K")
    _cache_dir(tmp_path, "index2", 2, "Unified", "2048K")
    _cache_dir(tmp_path, "index3", 3, "Unified", "491520K")
    assert cpu_llc_bytes(tmp_path) == (491520 * 1024, "sysfs L3")


def test_llc_without_sysfs_falls_back(tmp_path):
    size, source = cpu_llc_bytes(tmp_path / "missing")
    assert size > 0 and source in ("sysconf SC_LEVEL3_CACHE_SIZE", "sysconf SC_LEVEL2_CACHE_SIZE", "fallback")


@pytest.mark.gpu
def test_cuda_events_clock():
    x = torch.randn(512, 512, device="cuda")
    t = measure(lambda: x @ x, TimingConfig(warmup=1, min_iters=5, min_time_s=0.0), device="cuda")
    assert t.clock == "cuda-events" and t.iterations == 5 and t.median > 0
    assert t.cache == "cold" and t.extra["cache_size_from"] in ("cuda L2", "fallback")


def test_interleaved_rounds_alternate_their_order_and_pool_every_rounds_samples():
    from sparsebench.microbench import interleaved
    from sparsebench.timing import interleaved_order

    assert list(interleaved_order(3, 3)) == [0, 1, 2, 2, 1, 0, 0, 1, 2]
    calls = []

    def timer(name, seconds):
        def one_round():
            calls.append(name)
            return Timing((seconds, seconds * 2), 1, "cpu", "perf_counter")
        return one_round

    timed = interleaved({"dense": timer("dense", 1.0), "csr": timer("csr", 0.5)}, rounds=4)
    assert calls == ["dense", "csr", "csr", "dense", "dense", "csr", "csr", "dense"]
    assert timed["dense"].iterations == 8 and timed["dense"].extra["rounds"] == 4 and timed["csr"].median == 0.75


def test_the_speedup_range_pairs_the_fast_end_of_one_with_the_slow_end_of_the_other():
    from sparsebench.timing import speedup_range

    assert speedup_range((0.9, 1.1), (0.45, 0.6)) == pytest.approx((1.5, 1.1 / 0.45))
    low, high = speedup_range((1.0, 1.0), (1.0, 1.0))
    assert low == high == 1.0
    for dense, sparse in (((1.1, 0.9), (0.5, 0.6)), ((0.9, 1.1), (0.0, 0.6)), ((float("nan"), 1.0), (0.5, 0.6))):
        with pytest.raises(ValueError):
            speedup_range(dense, sparse)
