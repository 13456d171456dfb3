"""benchmarks/bench_harness.py: the harness share is measured on the task's own forward calls."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_harness", ROOT / "benchmarks" / "bench_harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_harness"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_the_forward_clock_counts_outermost_calls_and_puts_forward_back():
    bench = _bench()
    inner = torch.nn.Linear(4, 4)
    outer = torch.nn.Sequential(inner, torch.nn.ReLU())
    with bench.timed_forward(outer) as clock, bench.timed_forward(inner) as inner_clock:
        for _ in range(3):
            outer(torch.ones(2, 4))
    assert clock.calls == 3 and inner_clock.calls == 3 and 0 < inner_clock.seconds <= clock.seconds
    assert "forward" not in vars(outer) and "forward" not in vars(inner)


def test_each_task_of_the_suite_gets_a_harness_share(tiny_model_dirs):
    (row, *more) = _bench().measure(str(tiny_model_dirs["llama"]), "unit", [], [], 1)
    assert not more and row["task"] == "lambada-ppl" and row["forward_calls"] >= 1
    assert 0 < row["forward_s"] <= row["evaluate_s"] and 0 <= row["harness_share"] < 1
