"""``sparsebench bench-kernels``: per-layer kernel latency over real LLM shapes, as ratios to dense."""

from __future__ import annotations

import click

EPILOG = """
\b
Every case times dense and each kernel on the same inputs in this process, in 3
interleaved rounds (dense, a, b; b, a, dense; dense, a, b) whose samples are pooled, so
drift hits every kernel alike; the speedup is dense median / kernel median, printed beside the FLOP ideal (1/(1-s); 2x for 2:4)
and the bytes bound of the kernel's format at one token (dense bytes / packed bytes), with
the share of that bound reached. By default (--cache cold) each timed call reads a copy of
the packed weight last read twice the last-level cache ago, so weights come from memory as
in a model larger than the cache; --cache hot calls one copy again and again.
A kernel that cannot run a case is listed as unsupported with the reason, never timed.
\b
Examples:
  sparsebench bench-kernels --sparsity 0.9                # all shapes and token counts at 90%
  sparsebench bench-kernels --quick --shape 576x576,1536x576 --tokens 1
  sparsebench bench-kernels --kernel dense,csr --pattern unstructured --cache cold,hot --db sqlite:///results/sparsebench.db
  sparsebench bench-kernels --grid limits --markdown limits.md --json limits.json   # the limits table
  sparsebench bench-kernels --ingest limits.json --db sqlite:///results/sparsebench.db
"""


def _csv(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def available_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@click.command("bench-kernels", epilog=EPILOG)
@click.option("--grid", "grid_name", default="default", show_default=True,
              help="Named grid of shapes, tokens, sparsities, patterns, dtypes, cache regimes and threads: default, limits. "
                   "The options below override it.")
@click.option("--kernel", "kernel_names", default=None, help="Comma-separated kernels [default: all registered; see `list kernels`].")
@click.option("--shape", "shape_names", default=None, help="Comma-separated OUTxIN shapes [default: the grid's].")
@click.option("--tokens", default=None, help="Comma-separated token counts [default: the grid's; --quick: 1,128].")
@click.option("--sparsity", "sparsities", default=None, help="Comma-separated sparsities [default: the grid's].")
@click.option("--pattern", "pattern_names", default=None, help="Comma-separated patterns [default: unstructured,blockBxB,2:4].")
@click.option("--block-size", type=int, default=16, show_default=True, help="bsr block size and the default block pattern's tile.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", "dtypes", default=None, help="Comma-separated dtypes: float32, bfloat16, float16 [default: the grid's].")
@click.option("--cache", "caches", default=None, help="Comma-separated cache regimes: cold (weights from memory), hot [default: the grid's].")
@click.option("--evict-mb", type=float, default=None,
              help="Cold regime: MiB of copies of the weight rotated through, so each call reads a copy last read this "
                   "many MiB ago [default: twice the last-level cache the OS reports].")
@click.option("--threads", type=int, default=None, help="CPU threads for every kernel [default: the grid's, else all available cores].")
@click.option("--quick", is_flag=True, help="Tokens 1,128 and a short timing budget (3 calls, 0.05 s) for a fast look.")
@click.option("--min-iters", type=int, default=None, help="Timed calls per measurement, at least [default: 10; quick: 3].")
@click.option("--min-time", type=float, default=None, help="Timed seconds per measurement, at least [default: 0.2; quick: 0.05].")
@click.option("--db", default=None, help="Store the rows in this database (SQLAlchemy URL) as standalone timings.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the rows to this JSON file (--ingest reads it), after every case; run again with the same FILE "
                   "to resume: the cases it holds for this machine and thread count are not measured again.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the limits table (speedup, share of the bytes bound) as markdown.")
@click.option("--ingest", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Instead of measuring, store the rows of a --json file or a `pytest benchmarks/ --benchmark-json FILE` run (needs --db).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(grid_name, kernel_names, shape_names, tokens, sparsities, pattern_names, block_size, device, dtypes, caches, evict_mb, threads,
            quick, min_iters, min_time, db, json_path, markdown_path, ingest, no_progress) -> None:
    """Time each sparse kernel on single linear layers and print its speedup over dense."""
    import json
    from dataclasses import replace
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from sparsebench import provenance
    from sparsebench.cache import check_regime, cold_bytes
    from sparsebench.errors import InvalidSpecError
    from sparsebench.kernel import kernels, make_kernel
    from sparsebench.kernel_report import console_table, markdown
    from sparsebench.microbench import GRIDS, QUICK_TOKENS, bench_case, case_id, grid, grid_patterns, row_case_id, rows_from_json
    from sparsebench.publish import write_text_atomic
    from sparsebench.store import Store
    from sparsebench.timing import QUICK, TimingConfig

    if ingest:
        if not db:
            raise InvalidSpecError("--ingest stores rows and needs --db")
        rows = rows_from_json(ingest)
        n = Store(db).write_timings(rows)
        click.echo(f"stored {n} timing rows from {ingest} in {db}", err=True)
        return
    if grid_name not in GRIDS:
        raise InvalidSpecError(f"unknown grid {grid_name!r}; grids: {', '.join(GRIDS)}")
    g = GRIDS[grid_name]
    if threads is None:
        threads = g.threads or available_cores()
    if threads < 1:
        raise InvalidSpecError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidSpecError(f"device {device!r} requested but CUDA is not available")
    names = [kernels.canonical(k) for k in _csv(kernel_names)] or kernels.list()
    if "dense" in names:  # the baseline row first
        names = ["dense", *[n for n in names if n != "dense"]]
    kernel_list = [make_kernel(n, blocksize=block_size) for n in names]
    try:
        token_list = [int(t) for t in _csv(tokens)] or list(QUICK_TOKENS if quick else g.tokens)
        sparsity_list = [float(s) for s in _csv(sparsities)] or list(g.sparsities)
    except ValueError as exc:
        raise InvalidSpecError(f"--tokens takes integers and --sparsity numbers: {exc}") from None
    if any(t < 1 for t in token_list) or any(not 0 <= s < 1 for s in sparsity_list):
        raise InvalidSpecError("tokens must be >= 1 and sparsities in [0, 1)")
    dtype_list = _csv(dtypes) or list(g.dtypes)
    if bad := [d for d in dtype_list if d not in ("float32", "bfloat16", "float16")]:
        raise InvalidSpecError(f"--dtype takes float32, bfloat16 or float16, got {', '.join(bad)}")
    cache_list = [check_regime(c) for c in _csv(caches) or g.caches]
    patterns = grid_patterns(_csv(pattern_names) or g.patterns, block_size)
    base = QUICK if quick else TimingConfig()
    if evict_mb is not None and evict_mb <= 0:
        raise InvalidSpecError(f"--evict-mb must be positive, got {evict_mb:g}")
    evict_bytes = int(evict_mb * 2**20) if evict_mb else None
    config = TimingConfig(warmup=base.warmup, min_iters=min_iters or base.min_iters,
                          min_time_s=base.min_time_s if min_time is None else min_time, threads=threads, evict_bytes=evict_bytes)
    shapes = _csv(shape_names) or list(g.shapes)
    cases = [(c, cache) for dtype in dtype_list for cache in cache_list
             for c in grid(shapes, token_list, sparsity_list, patterns, getattr(torch, dtype), device)]
    if not cases:
        raise InvalidSpecError("no benchmark case matches these filters (2:4 exists only at sparsity 0.5)")
    hardware = provenance.hardware_label(device)
    cold, cold_source = cold_bytes(device, evict_bytes)
    rows = _resumed(json_path, hardware, threads)
    measured = {(row_case_id(r), r["kernel"]) for r in rows}
    todo = [(c, cache) for c, cache in cases if any((case_id(c, cache, hardware, threads), n) not in measured for n in names)]
    redo = {case_id(c, cache, hardware, threads) for c, cache in todo}  # a case measured without some kernel is measured again
    rows = [r for r in rows if row_case_id(r) not in redo]
    if len(todo) < len(cases):
        click.echo(f"resuming {json_path}: {len(cases) - len(todo)} of {len(cases)} cases already measured", err=True)
    store = Store(db) if db else None
    stored = 0
    for case, cache in tqdm(todo, desc="bench-kernels", unit="case", disable=no_progress):
        new = bench_case(case, kernel_list, replace(config, cache=cache), hardware)
        rows.extend(new)
        if json_path:  # every finished case is kept: an interrupted grid resumes from the file
            write_text_atomic(Path(json_path), json.dumps({"timing_rows": rows}, indent=1, default=str))
        if store:
            stored += store.write_timings(new)
    evicted = f"cold: each call reads a copy of the weight last read {cold / 2**20:.0f} MiB ago ({cold_source})" if "cold" in cache_list else ""
    click.echo(f"grid {grid_name}: {g.description}")
    click.echo(f"{hardware}; {threads} threads; cache {', '.join(cache_list)}{'; ' + evicted if evicted else ''}; "
               f"timing: >= {config.min_iters} calls and >= {config.min_time_s:g} s, median")
    for dtype in dtype_list:
        for cache in cache_list:
            part = [r for r in rows if r["dtype"] == dtype and r["details"]["cache"] == cache]
            if part:
                click.echo(f"\n{dtype}, {cache} cache\n{console_table(part)}")
    if markdown_path:
        Path(markdown_path).write_text(markdown(rows))
    if store:
        click.echo(f"stored {stored} timing rows in {db}", err=True)


def _resumed(json_path: str | None, hardware: str, threads: int) -> list[dict]:
    """The rows an earlier run left in ``--json FILE``, if it measured on this machine with these threads."""
    from pathlib import Path

    from sparsebench.errors import InvalidSpecError
    from sparsebench.microbench import rows_from_json

    if not json_path or not Path(json_path).exists():
        return []
    rows = rows_from_json(json_path)
    if other := {(r["hardware"], r["threads"]) for r in rows} - {(hardware, threads)}:
        found = "; ".join(f"{h!r}, threads={t}" for h, t in sorted(other, key=str))
        raise InvalidSpecError(f"{json_path} holds rows measured on {found}; this run is {hardware!r}, threads={threads}: "
                               "give another --json file to measure here")
    return rows
