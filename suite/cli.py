"""The ``sparsebench`` command line: parse strings into types, call the runner, print.

Every user error is one line on stderr and exit status 2; Ctrl-C is exit 130 and SIGTERM
exit 143, with nothing half-done stored.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys
import threading
from collections.abc import Sequence

import click

from . import logs
from .errors import InvalidSpecError, SparsebenchError, Terminated, interrupt_exit_code

EXAMPLES = """
\b
Examples:
  sparsebench run --method magnitude --model llama            # 50% unstructured, quick suite
  sparsebench run -m wanda --pattern 2:4 --task wikitext2      # 2:4, WikiText-2 (quick subset)
  sparsebench run -m magnitude --pattern unstructured-global --sparsity 0.7
  sparsebench run -m shortgpt --pattern depth --sparsity 0.2 --latency   # remove 20% of the blocks, time it
  sparsebench run -m wanda-sp --pattern channels --sparsity 0.3 --task wikitext2
  sparsebench run -m sparsegpt --suite paper --device cuda     # the literature protocol
  sparsebench run -m wanda --suite my.toml                     # a suite file (see `suite show quick`)
  sparsebench run -m wanda --seeds 0,1,2                       # one run per calibration seed: mean ± sd
  sparsebench compare 3 7                                      # run 7 − run 3 on the same items, interval, p
  sparsebench run -m wanda --suite wikitext2-ref-offline --set wikitext2.windows=2  # stored as wikitext2-ref-offline+HASH
  sparsebench list methods
  sparsebench results --format markdown                        # one row per run
  sparsebench results --stale                                  # runs whose method code changed
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
    logs.configure(verbose)


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
@click.option("-s", "--sparsity", type=float, default=None, help="Fraction of weights to zero, in [0, 1); for depth/heads/channels "
              "the fraction of the targeted parameters removed (blocks; attention projections; MLP projections). Default 0.5; "
              "N:M patterns imply their own.")
@click.option("-p", "--pattern", default="unstructured", show_default=True, help="unstructured | unstructured-global | N:M (e.g. 2:4) | "
              "blockRxC (e.g. block4x4): zeros in weights of unchanged shape; depth | heads | channels: whole blocks, attention "
              "heads (GQA groups kept consistent) or MLP channels removed, the model saved smaller (see `list methods`).")
@click.option("--suite", default="quick", show_default=True, help="Named, versioned protocol: calibration + tasks + settings "
              "(see `suite list`), or a suite file PATH.toml (see `suite show`).")
@click.option("--calibration", default=None, metavar="DATASET:NxL[@SEED]", help="Calibrate on N windows of L tokens of DATASET "
              "instead of the suite's (its sampling rule stays). The run is stored under a derived suite identity.")
@click.option("--set", "sets", multiple=True, metavar="TASK.KEY=VALUE", help="Change one suite setting for this run (repeatable; "
              "TASK may be `calibration`), e.g. --set wikitext2.windows=16. The run is stored under a derived suite identity.")
@click.option("-t", "--task", "tasks", multiple=True, help="Evaluate these tasks instead of the suite's (repeat or comma-separate).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Method parameter (repeatable), e.g. --param lam=0.04.")
@click.option("--kernels", multiple=True, help="Measure end-to-end latency with these kernels, e.g. dense,csr,bsr; "
              "auto: the fastest kernel per layer shape, measured here.")
@click.option("--latency", is_flag=True, help="Also store measured prefill (128 tokens) and decode (tokens/s) speed of the "
              "pruned model against the dense model in this process: the smaller dense model for depth/heads/channels, "
              "the kernels of --kernels (default: auto, the fastest per layer shape) otherwise. Cost: cold-cache timings "
              "in 4 interleaved rounds of at least 2 calls and 0.5 s per model and phase, plus (auto) a per-shape kernel choice: about a minute for "
              "SmolLM2-135M on 2 CPU cores; the unpruned model stays in memory meanwhile (2x the weights).")
@click.option("--cache", type=click.Choice(["cold", "hot"]), default="cold", show_default=True,
              help="Cache regime of the kernel timings: cold evicts the last-level cache before every call.")
@click.option("--latency-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="Time the kernels on the pruned model cast to this dtype [default: as loaded].")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--offload", is_flag=True, help="For models larger than the GPU: keep the model in CPU memory and move one "
              "block at a time to --device while calibrating; tasks then run on the CPU.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed for calibration sampling and random methods (>= 0) [default: 0].")
@click.option("--seeds", default=None, metavar="S1,S2,...", help="Run once per seed (e.g. 0,1,2), one stored run each; `results`, "
              "`compare --all-seeds` and the site then report the mean, sd and an interval over items and seeds.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads [default: torch's default, all available cores]. Recorded in the provenance, not part of the spec hash.")
@click.option("--db", default=None, help="SQLAlchemy URL of the results database [default: sqlite:///results/sparsebench.db]; "
              "a missing SQLite file and its folder are created.")
@click.option("--force", is_flag=True, help="Run again even if this exact spec is already stored (replaces it).")
@click.option("--dry-run", is_flag=True, help="Validate the spec and print what would run and its spec hash; load no model, write nothing.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def run(method, model, sparsity, pattern, suite, calibration, sets, tasks, params, kernels, latency, cache, latency_dtype, device, offload,
        seed, seeds, threads, db, force, dry_run, no_progress) -> None:
    """Prune MODEL with METHOD, verify the masks, evaluate the suite's tasks, store one record.

    A run is identified by its spec hash (method + params + the hash of the method's source,
    model + revision, pattern, sparsity, suite identity, tasks, seed; kernels and hardware when
    timing kernels): the same spec is stored once and skipped next time unless --force.
    The suite identity is its name, version and a digest of its effective settings: with
    --calibration, --set or an edited suite file the name is derived (NAME+HASH), so such runs
    never land on the named suite's leaderboard. --seed S samples calibration with the suite's
    seed + S; --seeds 0,1,2 runs the spec once per seed. Nothing is written unless the whole
    run succeeds (with --seeds, each seed's run is stored as it completes).
    """
    from .kernel_choice import AUTO, SHRUNK
    from .models import resolve_weights
    from .patterns import Structured, parse_pattern
    from .pruning import methods
    from .runner import describe, identity_of, plan
    from .runner import run as run_spec
    from .spec import RunSpec, spec_hash
    from .store import Store
    from .suite_file import load_suite

    cls = methods.get(method)
    m = cls.from_options(_parse_params(params))
    protocol = load_suite(suite)
    if calibration is not None:
        protocol = protocol.with_calibration(calibration)
    protocol = protocol.with_settings(sets) if sets else protocol
    target = parse_pattern(pattern)
    timed = _split_csv(kernels)
    if latency and not timed:
        timed = (SHRUNK,) if isinstance(target, Structured) else (AUTO,)
    specs = [RunSpec(
        method=cls.name, params=m.params, model=model, pattern=target, sparsity=sparsity, suite=protocol,
        tasks=_split_csv(tasks) or None, seed=s, device=device, kernels=timed, offload=offload, threads=threads,
        cache=cache, latency_dtype=latency_dtype,
    ) for s in _seed_list(seed, seeds)]
    plans = [plan(spec) for spec in specs]  # every name and range is checked before the database is touched
    if dry_run:
        weights = resolve_weights(plans[0].model)
        store = Store.existing(db)
        for p in plans:
            identity = identity_of(p, weights.revision)
            h = spec_hash(identity)
            old = store.has_run(h) if store is not None else None
            click.echo(f"would run: {describe(p, identity)}")
            click.echo(f"weights: {weights.source.describe()}")
            click.echo(f"spec {h[:12]}: " + (f"already stored as run {old.id} (use --force to run again)" if old else "not stored yet"))
        return
    store = Store(db)
    run_ids = []
    for spec in specs:
        result = run_spec(spec, store, force=force, progress=not no_progress, echo=lambda s: click.echo(s, err=True))
        if not result.skipped:
            click.echo(f"stored run {result.run_id} (spec {result.spec_hash[:12]}) in {store.url}", err=True)
        run_ids.append(result.run_id)
    _print_compact(store, run_ids)


def _seed_list(seed: int | None, seeds: str | None) -> list[int]:
    """The seeds to run: ``--seeds`` (comma-separated, distinct, >= 0), else ``--seed``, else 0."""
    if seeds is None:
        return [0 if seed is None else seed]
    if seed is not None:
        raise InvalidSpecError("give --seed or --seeds, not both")
    try:
        out = [int(x) for x in _split_csv([seeds])]
    except ValueError:
        raise InvalidSpecError(f"--seeds takes comma-separated integers >= 0, e.g. 0,1,2; got {seeds!r}") from None
    if not out or any(x < 0 for x in out) or len(set(out)) != len(out):
        raise InvalidSpecError(f"--seeds takes distinct comma-separated integers >= 0, e.g. 0,1,2; got {seeds!r}")
    return out


def _print_compact(store, run_ids) -> None:  # noqa: ANN001
    import pandas as pd

    from .results import compact, latency
    from .terminal import fit

    runs = store.runs(id=list(run_ids))
    if not runs.empty:
        click.echo(fit(compact(runs, store.metrics(runs["id"].tolist()))))
    timings = pd.concat([store.timings(run_id=i) for i in run_ids]) if run_ids else pd.DataFrame()
    if not timings.empty and (timings["scope"] != "layer").any():
        click.echo("\nlatency (speedup = dense median / median, [p10-p90 range], beside the FLOP ideal and the bytes bound):")
        click.echo(fit(latency(timings)))


@cli.command("list")
@click.argument("kind", type=click.Choice(["methods", "models", "tasks", "kernels", "suites", "datasets", "sampling-rules"]),
                default="methods")
def list_cmd(kind: str) -> None:
    """List what is registered: methods, models, tasks, kernels, suites, datasets or sampling rules."""
    from . import listing

    click.echo(listing.table(kind))


@cli.command()
@click.option("--db", default=None, help="SQLAlchemy URL of the results database (never created by this command).")
@click.option("-m", "--method", default=None, help="Only this method.")
@click.option("--model", default=None, help="Only this model.")
@click.option("--suite", default=None, help="Only this suite (a derived identity such as quick+3f2a1c is its own suite).")
@click.option("--pattern", default=None, help="Only this pattern (e.g. 2:4).")
@click.option("-t", "--task", default=None, help="Only this task's metrics.")
@click.option("--stale", is_flag=True, help="Only runs whose method source has changed since they were stored.")
@click.option("--long", "long_form", is_flag=True, help="One row per run, task and metric (csv and json always are).")
@click.option("--latency", is_flag=True, help="The selected runs' end-to-end timings instead: each speedup with its p10-p90 range, "
              "the FLOP ideal and the bytes bound, per kernel and phase.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True)
def results(db, method, model, suite, pattern, task, stale, long_form, latency, fmt) -> None:
    """Show stored results: one row per run with each task's primary metric as a column.

    Each value shows its 95% bootstrap interval over the task's items, e.g. 0.58 [0.48, 0.67].
    Runs that differ only in seed share one row (their ids, a seeds column): the mean over
    seeds ± the sd over seeds, and an interval over items and seeds, e.g. 0.58 ±0.012 [0.47, 0.68].
    A run that timed kernels (--kernels) shares its untimed twin's row; each seed counts once.
    `sparsebench compare` tells whether two rows differ.

    --long shows every metric as its own row. csv and json are the long form with each
    metric's details (split, subset seed and hash, data source, ...): nested in json,
    as details.* columns in csv. --stale lists runs whose method's source code has changed
    since they ran (their spec hash no longer matches; run them again to refresh them).
    --latency shows what the runs timed (`run --latency` or --kernels) rather than their scores.
    """
    from . import results as views
    from .store import Store

    store = Store(db, create=False)
    runs = store.runs(status="completed", method=method, model=model, suite=suite, pattern=pattern)
    changed = views.stale_runs(runs) if not runs.empty else set()
    if stale:
        runs = runs[runs["id"].isin(changed)]
    if task is not None and not runs.empty:
        m = store.metrics(runs["id"].tolist())
        runs = runs[runs["id"].isin(m.loc[m["task"] == task, "run_id"])]
    if runs.empty:
        click.echo("no stale runs" if stale else "no results", err=True)
        return
    if latency:
        timed = store.timings()
        df = views.latency(timed[timed["run_id"].isin(runs["id"])] if not timed.empty else timed)
        if df.empty:
            click.echo("no end-to-end timings for these runs (time them with `sparsebench run --latency`)", err=True)
            return
        _echo_frame(df, fmt)
        return
    if fmt in ("csv", "json") or long_form:
        df = views.long_form(store.results(id=runs["id"].tolist()))
        if task is not None:
            df = df[df["task"] == task]
        if fmt == "csv":
            df = views.flatten_details(df)
        elif fmt != "json":
            df = df.drop(columns=["method_params", "spec_hash", "created_at", "details"])
        _echo_frame(df, fmt, floatfmt=".4g")
        return
    _echo_frame(views.compact(runs, store.metrics(runs["id"].tolist())), fmt, floatfmt=".4g")
    if (n_stale := len(changed & set(runs["id"]))) and not stale:
        click.echo(f"note: {n_stale} of these runs used a method source that has changed since (see --stale)", err=True)


def _echo_frame(df, fmt: str, floatfmt: str = "g") -> None:  # noqa: ANN001
    """One table in the chosen --format: csv, json records, markdown, or a table fit to the terminal."""
    from .terminal import fit

    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", date_format="iso", indent=2, force_ascii=False))
    else:
        click.echo(df.to_markdown(index=False, floatfmt=floatfmt) if fmt == "markdown" else fit(df))


def _add_extra_commands() -> None:
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        cli.add_command(mod.command)


_add_extra_commands()


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one-line errors, exit 2 for user errors, 130 for Ctrl-C, 143 for SIGTERM."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="sparsebench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        code = interrupt_exit_code(exc.__cause__ or exc.__context__)
        what = "terminated (SIGTERM)" if code == Terminated.exit_code else "interrupted"
        click.echo(f"{what}: nothing half-done was stored (finished runs and cases are kept)", err=True)
        sys.exit(code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SparsebenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
