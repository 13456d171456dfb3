"""``sparsebench sweep GRID.toml``: run a grid of specs on local workers or a Ray cluster."""

from __future__ import annotations

import click

EPILOG = """
\b
Examples:
  sparsebench sweep grid.toml --dry-run                 # what would run, what is stored
  sparsebench sweep grid.toml --workers 2               # two local worker processes
  sparsebench sweep grid.toml --devices cuda:0,cuda:1   # one worker per GPU
  sparsebench sweep grid.toml --executor ray            # a local Ray cluster
  sparsebench sweep results/grids/smollm2-seeds.toml --publish results/runs   # the project's published runs
  sparsebench sweep grid.toml --executor ray --address ray://head:10001 --db postgresql+psycopg://...

\b
A grid file (see the README's "Sweeps" section for every key):
  models     = ["llama"]
  methods    = ["magnitude", "random", { name = "sparsegpt", params = { percdamp = [0.01, 0.1] } }]
  sparsities = [0.5, 0.6, 0.7]
  patterns   = ["unstructured", "2:4"]
  suites     = ["quick"]
  seeds      = [0]
"""


@click.command("sweep", epilog=EPILOG)
@click.argument("grid_file", metavar="GRID.toml", type=click.Path(dir_okay=False))
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: worker processes on this machine; ray: one Ray task per spec.")
@click.option("-w", "--workers", type=int, default=1, show_default=True,
              help="Worker processes (local), or the size of a local Ray cluster. Ignored with --devices / --address.")
@click.option("--devices", default=None, help="Local: one worker per device, e.g. cuda:0,cuda:1 (each worker sees only its GPU).")
@click.option("--address", default=None, help="Ray: address of an existing cluster (e.g. ray://head:10001 or auto); default: start a local one.")
@click.option("--db", default=None, help="SQLAlchemy URL of the results database, e.g. postgresql+psycopg://user@host/db for a shared one.")
@click.option("--max-attempts", type=int, default=2, show_default=True, help="Runs of a spec whose worker dies before it is recorded as failed.")
@click.option("--retry-failed/--skip-failed", default=True, show_default=True, help="Run specs again that a previous sweep recorded as failed.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads per worker [default: the grid's resources.cpus]. Recorded in each run's provenance, not hashed.")
@click.option("--publish", "publish_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of published bundles (e.g. results/runs): import the ones there first (a fresh clone resumes "
                   "where they stop), then write each stored run there as MODEL/SPECHASH.json at once, ready to commit.")
@click.option("--dry-run", is_flag=True, help="Expand and validate the grid, show each spec's status, run nothing (creates no database).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar (one line per finished spec is still printed).")
def command(grid_file, executor, workers, devices, address, db, max_attempts, retry_failed, threads, publish_dir, dry_run, no_progress):
    """Run every spec of the grid in GRID.toml that is not stored yet.

    The grid (models x methods x params x sparsities x patterns x suites x kernels x seeds)
    is validated before anything runs. Specs already stored are skipped by spec hash, so
    running the same command again resumes an interrupted sweep; failed specs are recorded
    with their error and retried next time. Each finished spec is stored at once by this
    process (the one writer); the exit status is 1 if any spec failed.
    """
    from dataclasses import replace

    from ..errors import Terminated, interrupt_exit_code
    from ..executors import make_executor
    from ..grid import load_grid
    from ..store import Store
    from ..sweep import expand, sweep

    grid = replace(load_grid(grid_file), threads=threads)
    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    if device_list and executor != "local":
        raise click.UsageError("--devices is for the local executor; Ray assigns GPUs itself")
    if dry_run:
        planned = expand(grid)
        existing = Store.existing(db)
        status = existing.statuses(pj.job.key for pj in planned) if existing is not None else {}
        if publish_dir is not None:
            from ..publish import published_hashes

            status |= {h: "published" for h in published_hashes(publish_dir) if status.get(h) != "completed"}
        for pj in planned:
            click.echo(f"{status.get(pj.job.key, 'pending'):9}  {pj.job.key[:12]}  {pj.label()}")
        click.echo(f"{len(planned)} specs, {sum(1 for pj in planned if pj.job.key not in status)} never run", err=True)
        return 0
    if grid.device == "cuda" and executor == "local" and not device_list:
        import torch

        device_list = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or None
    store = Store(db)
    on_stored = None
    if publish_dir is not None:
        from ..publish import load_published, publish_run

        report, late = load_published(store, publish_dir, (pj.job.key for pj in expand(grid)))
        if report is not None:
            click.echo(f"published bundles in {publish_dir}: {report.runs_imported} runs imported, {report.runs_skipped} already stored", err=True)
        if late:
            click.echo(f"published {len(late)} stored runs of the grid that had no bundle in {publish_dir}", err=True)

        def on_stored(run_id: int) -> str:
            return f"published {publish_run(store, run_id, publish_dir)}"
    ex = make_executor(executor, workers=workers, devices=device_list, address=address, max_attempts=max_attempts)
    try:
        summary = sweep(grid, store, ex, retry_failed=retry_failed, echo=lambda s: click.echo(s, err=True), progress=not no_progress,
                        on_stored=on_stored)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        click.echo(f"{what}: every finished spec is stored; run the same command again to resume", err=True)
        raise click.exceptions.Exit(interrupt_exit_code(exc)) from None
    click.echo(f"sweep done: {summary.line()} -> {store.url}", err=True)
    return 1 if summary.failed else 0
