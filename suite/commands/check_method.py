"""``sparsebench check-method``: run the method contract on a contributor's method."""

from __future__ import annotations

import click

from sparsebench.testing import FAMILIES as FAMILY_CHOICES


@click.command("check-method")
@click.argument("target", metavar="NAME|PATH")
@click.option("--family", "families", multiple=True, type=click.Choice(FAMILY_CHOICES),
              help="Tiny model families to check on (repeatable) [default: all].")
@click.option("-s", "--sparsity", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True,
              help="Target sparsity for the unstructured checks (N:M implies its own).")
def command(target: str, families: tuple[str, ...], sparsity: float) -> None:
    """Check that a method meets the sparsebench method contract.

    TARGET is a registered method name (built-in or from a plugin package) or the path of a
    .py file that registers one or more methods with @methods.register. Each method is run
    on tiny random Llama, OPT, GPT-2 and Gemma 3 models (seed 0) with every pattern it supports among
    unstructured, unstructured-global, 2:4, 4:8 and block4x4, and checked for: target sparsity
    met, valid N:M masks, the runner's mask verification, same seed giving the same mask, no
    change outside the targeted layers, and a declared range for every numeric parameter.
    Exit status 0 if every check passes, 1 otherwise.

    \b
    Examples:
      sparsebench check-method magnitude
      sparsebench check-method methods/my_method.py
      sparsebench check-method my_method.py --family llama
    """
    import tempfile
    from pathlib import Path

    from tabulate import tabulate

    from sparsebench import testing
    from sparsebench.contract import check_method, load_method_source, summary
    from sparsebench.suites import suites

    names = load_method_source(target)
    calibration = suites.get(testing.UNIT_SUITE).calibration
    failed_methods = []
    with tempfile.TemporaryDirectory(prefix="sparsebench-check-") as tmp:
        click.echo("building tiny random models ...", err=True)
        dirs = testing.build_tiny_models(Path(tmp), tuple(families) or testing.FAMILIES)
        for name in names:
            click.echo(f"checking {name} ...", err=True)
            checks = check_method(name, dirs, sparsity, calibration,
                                  on_check=lambda c: click.echo(f"  {'ok  ' if c.passed else 'FAIL'} {c.check} [{c.model}, {c.pattern}]", err=True))
            rows = [("PASS" if c.passed else "FAIL", c.check, c.model, c.pattern, c.detail) for c in checks]
            click.echo(tabulate(rows, headers=["result", "check", "model", "pattern", "detail"]))
            ok, total = summary(checks)
            if ok == total:
                click.echo(f"PASS: {name} meets the method contract ({ok}/{total} checks)")
            else:
                failed_methods.append(name)
                first = next(c for c in checks if not c.passed)
                click.echo(f"FAIL: {name} failed {total - ok} of {total} checks; first: {first.check} on {first.model} "
                           f"{first.pattern}: {first.detail}")
    if failed_methods:
        raise click.exceptions.Exit(1)
