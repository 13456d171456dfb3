"""``sparsebench import``: validate result bundles and import them in one transaction."""

from __future__ import annotations

import click


@click.command("import")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--db", default=None, help="SQLAlchemy URL of the results database [default: sqlite:///results/sparsebench.db].")
@click.option("--max-bytes", type=click.IntRange(1), default=None, help="Largest bundle accepted [default: 32 MiB].")
@click.option("--dry-run", is_flag=True, help="Validate and report, but store nothing (and create no database).")
def command(bundles, db, max_bytes, dry_run) -> None:
    """Validate BUNDLES (files, or folders whose *.json files are read recursively) and import
    their runs, all in one transaction.

    Every bundle is checked before anything is written: size, JSON, schema version, field
    names, types and ranges, the content hash and each run's spec hash. One bad bundle
    rejects them all with a one-line error, and nothing is imported. Runs already stored
    (same spec hash) and timings already stored are skipped.

    \b
    Examples:
      sparsebench import results/                     # every published bundle
      sparsebench import results/submissions/*.json
      sparsebench import --dry-run my-bundle.json
    """
    from pathlib import Path

    from sparsebench.bundles import DEFAULT_MAX_BYTES, bundle_files, read_bundles, store_bundles
    from sparsebench.store import Store

    # every bundle is read and checked before any database is opened
    checked = read_bundles(bundle_files(Path(b) for b in bundles), max_bytes or DEFAULT_MAX_BYTES)
    if dry_run:  # compared with the database if there is one; nothing is created
        store = Store.existing(db) or Store("sqlite:///:memory:")
    else:
        store = Store(db)
    report = store_bundles(store, checked, dry_run=dry_run)
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {report.runs_imported} runs ({report.runs_skipped} already stored) and "
               f"{report.timings_imported} standalone timings ({report.timings_skipped} already stored) "
               f"from {report.files} bundle(s)")
