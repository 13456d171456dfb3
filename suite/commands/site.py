"""``sparsebench site build``: render the static leaderboard from the results database."""

from __future__ import annotations

import click


@click.group("site")
def command() -> None:
    """Build the static leaderboard site."""


@command.command("build")
@click.option("--db", default=None, help="SQLAlchemy URL of the results database [default: sqlite:///results/sparsebench.db].")
@click.option("--out", default="site-build", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write the site to (replaced as a whole; must be new, empty or an earlier build).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def build(db, out, no_progress) -> None:
    """Render leaderboards (one per suite version), method, model, kernel and run pages.

    The output is plain HTML with inline SVG plots, one CSS file and one small script: open
    OUT/index.html from disk or serve the folder anywhere; nothing is fetched from the network.

    \b
    Examples:
      sparsebench site build                          # results/sparsebench.db -> site-build/
      sparsebench site build --db sqlite:///all.db --out public
    """
    from pathlib import Path

    from sparsebench.site.build import build_site
    from sparsebench.store import Store

    report = build_site(Store(db, create=False), Path(out), progress=not no_progress)
    click.echo(f"built {len(report.pages)} pages from {report.runs} runs and {report.timings} timings into "
               f"{report.out}/ (open {report.out / 'index.html'})")
