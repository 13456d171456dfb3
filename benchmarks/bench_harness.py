"""Harness overhead of each task of a suite: ``Task.evaluate`` wall time against the time spent
inside the model's own forward passes during it.

The forward passes are the very calls the task makes: ``model.forward`` is wrapped for the
duration of ``evaluate`` and the outermost calls are timed, so nothing is run twice and no
estimate of the "model alone" is needed. What remains is the harness: tokenization, batching
and padding, lm-eval's request bookkeeping, the log-softmax over the vocabulary and the
scoring outside the model, and building lm-eval's task object (done on every evaluation). Each
task runs once first, unmeasured, so imports, the first read of the data and the allocator's
warm-up are not counted.

    python benchmarks/bench_harness.py                                   # llama, quick's tasks on small subsets
    python benchmarks/bench_harness.py --model gemma3 --threads 2 --json harness.json
    python benchmarks/bench_harness.py --set arc_easy.limit=100 --task arc_easy   # the suite's own subset

The subsets default to a few dozen documents per zero-shot task and one perplexity window,
enough for a stable share in a few minutes on 2 cores; pass ``--set`` to change them. The
share is a ratio measured inside one process, so it can be compared across machines; the
seconds cannot.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SMALL = ("arc_easy.limit=24", "piqa.limit=24", "hellaswag.limit=12", "lambada-ppl.windows=1", "wikitext2.windows=1")


@dataclass
class ForwardClock:
    seconds: float = 0.0
    calls: int = 0
    depth: int = 0


@contextmanager
def timed_forward(model) -> Iterator[ForwardClock]:  # noqa: ANN001
    """Time the outermost calls of ``model.forward`` while the block runs (re-entrant calls count once)."""
    clock = ForwardClock()
    inner = model.forward

    @functools.wraps(inner)
    def forward(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        clock.depth += 1
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            clock.depth -= 1
            if clock.depth == 0:
                clock.seconds += time.perf_counter() - start
                clock.calls += 1

    model.forward = forward
    try:
        yield clock
    finally:
        del model.forward  # the class's forward again


def measure(model_name: str, suite_name: str, sets: list[str], only: list[str], threads: int | None) -> list[dict]:
    import torch

    from sparsebench.models import load_model, resolve_model
    from sparsebench.suite_file import load_suite

    if threads:
        torch.set_num_threads(threads)
    suite = load_suite(suite_name)
    suite = suite.with_settings([*(s for s in SMALL if s.split('.')[0] in suite.task_settings), *sets])
    loaded = load_model(resolve_model(model_name))
    rows = []
    for name in only or suite.tasks:
        task = suite.make_task(name)
        task.evaluate(loaded, progress=False)  # warm: imports, the data's first read, the allocator
        with timed_forward(loaded.model) as clock:
            start = time.perf_counter()
            metrics = task.evaluate(loaded, progress=False)
            total = time.perf_counter() - start
        rows.append({"model": model_name, "task": name, "items": metrics[0].n, "evaluate_s": round(total, 3),
                     "forward_s": round(clock.seconds, 3), "forward_calls": clock.calls,
                     "harness_share": round((total - clock.seconds) / total, 4), "threads": torch.get_num_threads()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama")
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--task", action="append", default=[], help="only these tasks (default: the suite's)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="TASK.KEY=VALUE over the small subsets")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    import pandas as pd

    rows = measure(args.model, args.suite, args.sets, args.task, args.threads)
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
