"""``sparsebench site build``: render the static leaderboard from the published bundles or a database."""

from __future__ import annotations

import click


@click.group("site")
def command() -> None:
    """Build the static leaderboard site."""


@command.command("build")
@click.option("--bundles", "bundle_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder of result bundles (*.json, searched recursively) to build from when no --db is given.")
@click.option("--db", default=None, help="Build from this results database (SQLAlchemy URL) instead of the bundles.")
@click.option("--out", default="site-build", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write the site to (replaced as a whole; must be new, empty or an earlier build).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def build(bundle_dir, db, out, no_progress) -> None:
    """Render leaderboards (one per suite version), method, model, kernel and run pages.

    By default the site shows the published results: every bundle under results/ is validated
    and imported into a fresh index database (a temporary file, rebuilt on each build; nothing
    in the repository is written), and the site is built from it. --db builds from a results
    database instead (e.g. your own runs in sqlite:///results/sparsebench.db).

    The output is plain HTML with inline SVG plots, one CSS file and one small script: open
    OUT/index.html from disk or serve the folder anywhere; nothing is fetched from the network.

    \b
    Examples:
      sparsebench site build                          # the bundles under results/ -> site-build/
      sparsebench site build --db sqlite:///results/sparsebench.db --out mine
    """
    import tempfile
    from pathlib import Path

    from sparsebench.bundles import bundle_files, import_bundles
    from sparsebench.errors import SparsebenchError
    from sparsebench.site.build import build_site
    from sparsebench.store import Store

    if db is not None:
        report = build_site(Store(db, create=False), Path(out), progress=not no_progress)
        source = db
    else:
        if not Path(bundle_dir).is_dir():
            raise SparsebenchError(f"no bundle folder {bundle_dir}/ here; run from the repository root, or pass --bundles DIR or --db URL")
        files = bundle_files([Path(bundle_dir)])
        with tempfile.TemporaryDirectory(prefix="sparsebench-index-") as tmp:
            index = Store(f"sqlite:///{Path(tmp) / 'index.db'}")
            imported = import_bundles(index, files)
            report = build_site(index, Path(out), progress=not no_progress)
            index.engine.dispose()
            index.write_engine.dispose()
        source = f"{imported.files} bundle(s) under {bundle_dir}/"
    click.echo(f"built {len(report.pages)} pages from {report.runs} runs and {report.timings} timings ({source}) into "
               f"{report.out}/ (open {report.out / 'index.html'})")
