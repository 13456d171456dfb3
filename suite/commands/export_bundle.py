"""``sparsebench export``: write stored runs as a result bundle."""

from __future__ import annotations

import click


@click.command("export")
@click.option("--db", default=None, help="SQLAlchemy URL of the results database [default: sqlite:///results/sparsebench.db].")
@click.option("-o", "--out", default="-", show_default=True, help="Bundle file to write ('-' = stdout).")
@click.option("-m", "--method", default=None, help="Only runs of this method.")
@click.option("--model", default=None, help="Only runs of this model.")
@click.option("--suite", default=None, help="Only runs of this suite.")
@click.option("--kernel-timings", is_flag=True, help="Also include standalone kernel microbenchmark timings.")
def command(db, out, method, model, suite, kernel_timings) -> None:
    """Export runs (with metrics, timings and provenance) as a schema-versioned JSON bundle.

    The bundle carries a sha256 content hash; `sparsebench import` checks it, validates every
    field and skips runs already stored (same spec hash). Share bundles by adding them under
    results/submissions/ in a pull request (see CONTRIBUTING.md).

    \b
    Examples:
      sparsebench export -m my-method -o results/submissions/my-method.json
      sparsebench export --kernel-timings -o all.json
    """
    from pathlib import Path

    from sparsebench.bundles import dumps, export_bundle
    from sparsebench.publish import write_text_atomic
    from sparsebench.store import Store

    bundle = export_bundle(Store(db, create=False), kernel_timings=kernel_timings, method=method, model=model, suite=suite)
    text = dumps(bundle)
    if out == "-":
        click.echo(text, nl=False)
    else:
        write_text_atomic(Path(out), text)
    click.echo(f"exported {len(bundle['runs'])} runs and {len(bundle['timings'])} standalone timings "
               f"({bundle['content_hash'][:19]}) to {out if out != '-' else 'stdout'}", err=True)
