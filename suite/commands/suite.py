"""``sparsebench suite list | show | check``: the protocols, as files a user can read, copy and edit."""

from __future__ import annotations

import click


@click.group("suite")
def command() -> None:
    """Suites: named, versioned protocols written as TOML files.

    \b
    Examples:
      sparsebench suite list
      sparsebench suite show quick > my.toml          # every setting, resolved; edit it
      sparsebench suite check my.toml                 # one-line errors, exit 2
      sparsebench run -m wanda --suite my.toml        # stored as quick+HASH if edited
    """


@command.command("list")
def list_suites() -> None:
    """The registered suites (built-in files and plugins)."""
    from sparsebench import listing

    click.echo(listing.table("suites"))


@command.command("show")
@click.argument("suite")
@click.option("--calibration", default=None, metavar="DATASET:NxL[@SEED]", help="Show it with this calibration (as `run` would).")
@click.option("--set", "sets", multiple=True, metavar="TASK.KEY=VALUE", help="Show it with this setting changed (as `run` would).")
def show(suite, calibration, sets) -> None:
    """Print SUITE (a name or a file) as TOML with every setting resolved, ready to copy."""
    from sparsebench.suite_file import dump_suite, load_suite

    protocol = load_suite(suite)
    if calibration is not None:
        protocol = protocol.with_calibration(calibration)
    click.echo(dump_suite(protocol.with_settings(sets) if sets else protocol), nl=False)


@command.command("check")
@click.argument("path")
def check(path) -> None:
    """Check a suite file: one line naming its identity, or one error line and exit 2."""
    from sparsebench.suite_file import read_suite

    protocol = read_suite(path)
    ident = protocol.identity()
    click.echo(f"{path}: suite {ident.name} v{ident.version}, settings {ident.settings[:12]}, tasks {', '.join(protocol.tasks)}; "
               f"calibration {protocol.calibration}")
