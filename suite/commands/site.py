"""``sparsebench site build``: render the static leaderboard from the published bundles or a database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click


@contextmanager
def bundle_index(bundle_dir: str) -> Iterator[tuple[Any, int]]:
    """A fresh temporary index database of every bundle under ``bundle_dir`` (validated), and the number of files."""
    import tempfile
    from pathlib import Path

    from sparsebench.bundles import bundle_files, import_bundles
    from sparsebench.errors import SparsebenchError
    from sparsebench.store import Store

    if not Path(bundle_dir).is_dir():
        raise SparsebenchError(f"no bundle folder {bundle_dir}/ here; run from the repository root, or pass --bundles DIR or --db URL")
    files = bundle_files([Path(bundle_dir)])
    with tempfile.TemporaryDirectory(prefix="sparsebench-index-") as tmp:
        index = Store(f"sqlite:///{Path(tmp) / 'index.db'}")
        try:
            import_bundles(index, files)
            yield index, len(files)
        finally:
            index.engine.dispose()
            index.write_engine.dispose()


@click.group("site")
def command() -> None:
    """Build the static leaderboard site."""


@command.command("build")
@click.option("--bundles", "bundle_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder of result bundles (*.json, searched recursively) to build from when no --db is given.")
@click.option("--db", default=None, help="Build from this results database (SQLAlchemy URL) instead of the bundles.")
@click.option("--out", default="site-build", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write the site to (replaced as a whole; must be new, empty or an earlier build).")
@click.option("--suites", "suites_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of the suite files (*.toml) the runs used that are not registered suites  [default: BUNDLES/suites]")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def build(bundle_dir, db, out, suites_dir, no_progress) -> None:
    """Render leaderboards (one per suite version), method, model, kernel and run pages.

    By default the site shows the published results: every bundle under results/ is validated
    and imported into a fresh index database (a temporary file, rebuilt on each build; nothing
    in the repository is written), and the site is built from it. --db builds from a results
    database instead (e.g. your own runs in sqlite:///results/sparsebench.db).

    Each leaderboard links its protocol, a suite file under OUT/protocols/ that `sparsebench run
    --suite FILE` runs: the registered suite's, or for a derived identity (NAME+HASH) the file
    under --suites with those settings (results/suites/ holds the published ones).

    The output is plain HTML with inline SVG plots, one CSS file and one small script: open
    OUT/index.html from disk or serve the folder anywhere; nothing is fetched from the network.

    \b
    Examples:
      sparsebench site build                          # the bundles under results/ -> site-build/
      sparsebench site build --db sqlite:///results/sparsebench.db --out mine
    """
    from pathlib import Path

    from sparsebench.site.build import build_site
    from sparsebench.site.protocols import suite_files
    from sparsebench.store import Store

    protocol_files = suite_files(Path(suites_dir if suites_dir is not None else Path(bundle_dir) / "suites"))
    if db is not None:
        report = build_site(Store(db, create=False), Path(out), progress=not no_progress, suite_files=protocol_files)
        source = db
    else:
        with bundle_index(bundle_dir) as (index, files):
            report = build_site(index, Path(out), progress=not no_progress, suite_files=protocol_files)
        source = f"{files} bundle(s) under {bundle_dir}/"
    click.echo(f"built {len(report.pages)} pages from {report.runs} runs and {report.timings} timings ({source}) into "
               f"{report.out}/ (open {report.out / 'index.html'})")


@command.command("readme")
@click.option("--bundles", "bundle_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the published result bundles.")
@click.option("--readme", default="README.md", show_default=True, type=click.Path(dir_okay=False),
              help="The README whose leaderboard block (between the sparsebench:leaderboard markers) is rewritten.")
@click.option("--top", default=8, show_default=True, type=click.IntRange(min=1), help="Rows per leaderboard.")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 naming the stale files if the README block or its plots are out of date.")
def readme(bundle_dir, readme, top, check) -> None:
    """Regenerate the README's leaderboard block from the published bundles.

    For each LLM leaderboard (suite version x causal-LM model): the top rows by mean zero-shot
    accuracy with their 95% intervals and best measured speedup, and the central plot (mean
    zero-shot accuracy vs measured decode and prefill speedup) as SVG files under
    docs/leaderboard/. Run it from the repository root after publishing runs; CI runs --check.

    \b
    Examples:
      sparsebench site readme            # rewrite README.md's block and docs/leaderboard/*.svg
      sparsebench site readme --check    # exit 1 if they are stale
    """
    from pathlib import Path

    from sparsebench.site import readme as block_of
    from sparsebench.site.build import environment
    from sparsebench.site.tables import Frames

    root, name = Path(readme).resolve().parent, Path(readme).name
    with bundle_index(bundle_dir) as (index, _):
        block = block_of.readme_block(Frames(index.runs(), index.metrics(), index.timings()), environment(), top=top)
    stale = block_of.stale_files(root, name, block)
    if check:
        if stale:
            click.echo(f"stale: {', '.join(stale)}; run `sparsebench site readme` and commit the result", err=True)
            raise click.exceptions.Exit(1)
        click.echo(f"{name} and its {len(block.images)} plot(s) are up to date with {bundle_dir}/")
        return
    block_of.write(root, name, block)
    click.echo(f"rewrote {len(stale)} file(s): {', '.join(stale) or 'none changed'}")
