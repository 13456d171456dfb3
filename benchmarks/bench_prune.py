"""Prune wall time and peak memory of every calibration method on SmolLM2-135M (quick calibration).

Each measurement runs in a fresh subprocess, so one method's allocations never inflate
another's peak. Peak RSS is read from ``VmHWM`` after resetting it (``/proc/self/clear_refs``)
once the model is loaded, so it is the peak *while pruning*, not while loading. The plain
forward pass is the dense model (with its LM head) run once over the same calibration
sequences, one sequence at a time, as the driver does. The weights are copied out of the
memory-mapped checkpoint before the peak is reset (paging them in would otherwise count
the model itself as pruning memory). ``budget_over_loaded_mb`` is one block's parameters
+ one set of hidden states for the calibration sequences + the block's Hessians (the
bound for SparseGPT) + the returned masks (one byte per targeted weight).

    python benchmarks/bench_prune.py                       # all calibration methods, 50% unstructured
    python benchmarks/bench_prune.py -m wanda -m sparsegpt -p 2:4
    python benchmarks/bench_prune.py -m sparsegpt --mmap-threshold 65536   # working set, see below

Peak RSS also counts memory the C allocator keeps after a free: glibc's dynamic mmap
threshold makes the driver's freed megabyte-sized temporaries (one per calibration
sequence) come from the heap, which fragments. ``--mmap-threshold`` fixes glibc's threshold
(``MALLOC_MMAP_THRESHOLD_``) in the workers so large blocks are returned on free and the
peak is the working set itself; it is slower, so compare timings only without it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time


def _rss_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(key)


def _reset_peak() -> None:
    import ctypes

    try:  # hand freed heap back to the OS first, so reused free memory cannot hide the peak
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def worker(method: str, pattern: str, model: str, suite: str) -> dict:
    import torch

    from sparsebench.calibration import calibration_tokens
    from sparsebench.drivers import prune
    from sparsebench.models import load_model, resolve_model
    from sparsebench.patterns import parse_pattern, resolve_sparsity
    from sparsebench.pruning import PruneContext, methods
    from sparsebench.suites import suites

    loaded = load_model(resolve_model(model))
    calib = suites.get(suite).calibration
    pat = parse_pattern(pattern)
    ctx = PruneContext(loaded, pat, resolve_sparsity(pat, None), 0, calib, progress=False)
    tokens = calibration_tokens(ctx)
    params = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2**20
    blocks = loaded.adapter.blocks(loaded.model)
    block = blocks[0]
    hidden = loaded.model.config.hidden_size
    out = {"method": method, "pattern": pattern, "model_mb": round(params, 1),
           "block_params_mb": round(sum(p.numel() * p.element_size() for p in block.module.parameters()) / 2**20, 1),
           # one set of hidden states for every calibration sequence (fp32; outputs replace inputs)
           "hidden_states_mb": round(tokens.numel() * hidden * 4 / 2**20, 1),
           "block_hessians_mb": round(sum(layer.in_features**2 * 4 for layer in block.layers) / 2**20, 1),
           # the bool masks every method returns (one byte per targeted weight), the run's output
           "masks_mb": round(sum(layer.weight.numel() for layer in loaded.adapter.prunable_layers(loaded.model)) / 2**20, 1),
           "calibration": str(calib)}
    out["budget_over_loaded_mb"] = round(sum(out[k] for k in ("block_params_mb", "hidden_states_mb", "block_hessians_mb", "masks_mb")), 1)
    with torch.no_grad():  # copy memory-mapped weights into private memory so "loaded" means resident
        for p in loaded.model.parameters():
            p.data = p.data.clone()
    gc.collect()
    _reset_peak()
    base = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    if method == "forward":
        with torch.no_grad():
            for i in range(tokens.shape[0]):
                loaded.model(tokens[i : i + 1], use_cache=False)
    else:
        prune(methods.get(method)(), ctx)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["rss_before_mb"] = round(base, 1)
    out["peak_rss_mb"] = round(_rss_mb("VmHWM"), 1)
    out["peak_over_loaded_mb"] = round(out["peak_rss_mb"] - base, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--method", action="append", help="method(s); default: every calibration method")
    ap.add_argument("-p", "--pattern", default="unstructured")
    ap.add_argument("--model", default="llama")
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--mmap-threshold", type=int, metavar="BYTES",
                    help="glibc MALLOC_MMAP_THRESHOLD_ for the workers (e.g. 65536: measure the working set)")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "PATTERN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.model, args.suite)))
        return
    from sparsebench.pruning import methods

    names = args.method or [n for n in methods.list() if methods.get(n).meta.needs_calibration]
    rows = []
    for name in ["forward", *names]:
        cmd = [sys.executable, __file__, "--worker", name, args.pattern, "--model", args.model, "--suite", args.suite]
        env = dict(os.environ)
        if args.mmap_threshold:
            env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode:
            print(f"{name}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append({**json.loads(res.stdout.strip().splitlines()[-1]), "mmap_threshold": args.mmap_threshold or "default"})
        print(json.dumps(rows[-1]), file=sys.stderr)
    fwd = next((r["seconds"] for r in rows if r["method"] == "forward"), None)
    import pandas as pd

    df = pd.DataFrame(rows)
    if fwd:
        df["x_forward"] = (df["seconds"] / fwd).round(2)
    cols = ["method", "pattern", "mmap_threshold", "seconds", "x_forward", "peak_rss_mb", "peak_over_loaded_mb", "budget_over_loaded_mb", "model_mb",
            "block_params_mb", "hidden_states_mb", "block_hessians_mb", "masks_mb"]
    print(df[[c for c in cols if c in df]].to_markdown(index=False))
    if args.json:
        df.to_json(args.json, orient="records", indent=1)


if __name__ == "__main__":
    main()
