"""``sparsebench bench-kernels``: per-layer kernel latency over real LLM shapes, as ratios to dense."""

from __future__ import annotations

import click

EPILOG = """
\b
Every case times dense first, then each kernel, on the same inputs in this process; the
speedup is dense median / kernel median, printed beside the ideal (1/(1-s); 2x for 2:4).
A kernel that cannot run a case is listed as unsupported with the reason, never timed.
\b
Examples:
  sparsebench bench-kernels --sparsity 0.9                # all shapes and token counts at 90%
  sparsebench bench-kernels --quick --shape 576x576,1536x576 --tokens 1
  sparsebench bench-kernels --kernel dense,csr --pattern unstructured --db sqlite:///results/sparsebench.db
  sparsebench bench-kernels --ingest .benchmarks/kernels.json --db sqlite:///results/sparsebench.db
"""


def _csv(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _note(reason, details, speedup, ideal) -> str:  # noqa: ANN001
    if isinstance(reason, str) and reason:
        return reason
    if speedup == speedup and ideal == ideal and speedup is not None and ideal is not None and speedup > 1.05 * ideal:
        return "above ideal: the dense baseline was disturbed (noisy machine?)"
    return details.get("backend", "") if isinstance(details, dict) else ""


def _format(df):  # noqa: ANN001, ANN202 - pandas stays a lazy import
    def ratio(v):  # noqa: ANN001, ANN202
        return "-" if v != v or v is None else f"{v:.2f}x"

    out = df.assign(
        shape=df["shape"].map(lambda s: f"{s['out']}x{s['in']}"),
        tokens=df["shape"].map(lambda s: s["tokens"]),
        median_ms=df["median_s"].map(lambda v: "-" if v != v or v is None else f"{v * 1e3:.4g}"),
        p10_p90_ms=[("-" if a != a or a is None else f"{a * 1e3:.3g}-{b * 1e3:.3g}") for a, b in zip(df["p10_s"], df["p90_s"])],
        speedup=df["speedup"].map(ratio),
        ideal=df["ideal_speedup"].map(ratio),
        note=[_note(r, d, sp, ideal) for r, d, sp, ideal in zip(df["reason"], df["details"], df["speedup"], df["ideal_speedup"])],
    )
    cols = ["shape", "tokens", "pattern", "sparsity", "kernel", "status", "median_ms", "p10_p90_ms", "speedup", "ideal", "note"]
    return out[cols].to_string(index=False)


@click.command("bench-kernels", epilog=EPILOG)
@click.option("--kernel", "kernel_names", default=None, help="Comma-separated kernels [default: all registered; see `list kernels`].")
@click.option("--shape", "shape_names", default=None, help="Comma-separated OUTxIN shapes [default: Llama-2-7B and SmolLM2-135M layers].")
@click.option("--tokens", default=None, help="Comma-separated token counts [default: 1,16,128,2048; --quick: 1,128].")
@click.option("--sparsity", "sparsities", default=None, help="Comma-separated sparsities [default: 0.5,0.7,0.9,0.95].")
@click.option("--pattern", "pattern_names", default=None, help="Comma-separated patterns [default: unstructured,blockBxB,2:4].")
@click.option("--block-size", type=int, default=16, show_default=True, help="bsr block size and the default block pattern's tile.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16", "bfloat16"]))
@click.option("--threads", type=int, default=None, help="CPU threads for torch [default: torch's current setting].")
@click.option("--quick", is_flag=True, help="Tokens 1,128 and a short timing budget (3 calls, 0.05 s) for a fast look.")
@click.option("--min-iters", type=int, default=None, help="Timed calls per measurement, at least [default: 10; quick: 3].")
@click.option("--min-time", type=float, default=None, help="Timed seconds per measurement, at least [default: 0.2; quick: 0.05].")
@click.option("--db", default=None, help="Store the rows in this database (SQLAlchemy URL) as standalone timings.")
@click.option("--ingest", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Instead of measuring, store the rows of a `pytest benchmarks/ --benchmark-json FILE` run (needs --db).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(kernel_names, shape_names, tokens, sparsities, pattern_names, block_size, device, dtype, threads, quick,
            min_iters, min_time, db, ingest, no_progress) -> None:
    """Time each sparse kernel on single linear layers and print its speedup over dense."""
    import pandas as pd
    import torch
    from tqdm import tqdm

    from sparsebench import provenance
    from sparsebench.errors import InvalidSpecError
    from sparsebench.kernel import kernels, make_kernel
    from sparsebench.microbench import QUICK_TOKENS, SHAPES, SPARSITIES, TOKENS, bench_case, default_patterns, grid, rows_from_benchmark_json
    from sparsebench.patterns import parse_pattern
    from sparsebench.store import Store
    from sparsebench.timing import QUICK, TimingConfig

    if ingest:
        if not db:
            raise InvalidSpecError("--ingest stores rows and needs --db")
        rows = rows_from_benchmark_json(ingest)
        n = Store(db).write_timings(rows)
        click.echo(f"stored {n} timing rows from {ingest} in {db}", err=True)
        return
    if threads is not None:
        if threads < 1:
            raise InvalidSpecError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)  # also what the hardware label reports
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidSpecError(f"device {device!r} requested but CUDA is not available")
    names = [kernels.canonical(k) for k in _csv(kernel_names)] or kernels.list()
    if "dense" in names:  # the baseline row first
        names = ["dense", *[n for n in names if n != "dense"]]
    kernel_list = [make_kernel(n, blocksize=block_size) for n in names]
    try:
        token_list = [int(t) for t in _csv(tokens)] or list(QUICK_TOKENS if quick else TOKENS)
        sparsity_list = [float(s) for s in _csv(sparsities)] or list(SPARSITIES)
    except ValueError as exc:
        raise InvalidSpecError(f"--tokens takes integers and --sparsity numbers: {exc}") from None
    if any(t < 1 for t in token_list) or any(not 0 <= s < 1 for s in sparsity_list):
        raise InvalidSpecError("tokens must be >= 1 and sparsities in [0, 1)")
    patterns = [parse_pattern(p) for p in _csv(pattern_names)] or list(default_patterns(block_size))
    base = QUICK if quick else TimingConfig()
    config = TimingConfig(warmup=base.warmup, min_iters=min_iters or base.min_iters,
                          min_time_s=base.min_time_s if min_time is None else min_time, threads=threads)
    cases = grid(_csv(shape_names) or list(SHAPES), token_list, sparsity_list, patterns, getattr(torch, dtype), device)
    if not cases:
        raise InvalidSpecError("no benchmark case matches these filters (2:4 exists only at sparsity 0.5)")
    hardware = provenance.hardware_label(device)
    rows = []
    for case in tqdm(cases, desc="bench-kernels", unit="case", disable=no_progress):
        rows.extend(bench_case(case, kernel_list, config, hardware))
    df = pd.DataFrame(rows)
    click.echo(f"{hardware}; dtype {dtype}; {df['threads'].iloc[0]} threads; timing: >= {config.min_iters} calls and >= {config.min_time_s:g} s, median")
    click.echo(_format(df))
    if db:
        n = Store(db).write_timings(rows)
        click.echo(f"stored {n} timing rows in {db}", err=True)
