"""``sparsebench compare RUN_A RUN_B``: the difference of two runs on the same items, with its interval and p-value."""

from __future__ import annotations

import click

from ..confidence import LEVEL, RESAMPLES, SEED


HELP = f"""\
Δ = B − A of every metric the two runs share, on the same items.

RUN_A and RUN_B are run ids as `sparsebench results` shows them (a row of runs that
differ only in seed, e.g. 4,5,6, compares their mean over seeds; a run that timed kernels
and its untimed twin count as one seed), or unique prefixes (4+ hex digits) of their spec
hashes. The runs must have scored the same items: the same
suite identity, model and model revision, task versions and item ids; otherwise the
command says which differs.

\b
For each metric:
  Δ          B − A (for perplexity, lower is better: a negative Δ favours B)
  95% CI     paired bootstrap: {RESAMPLES} resamples of the items (seed {SEED}), both runs
             recomputed on the same resampled items (perplexity: total NLL / total tokens
             of the resampled windows); with --all-seeds, seeds are resampled too
  p          McNemar's exact test (scipy.stats.binomtest on the items only one run gets
             right) for accuracies (0/1 items: acc, acc_norm, top1, top5) of one run each;
             the paired bootstrap's two-sided p-value otherwise (perplexity, nDCG@10,
             RR@10, and --all-seeds)

A difference is significant at the 5% level when p < 0.05 (the interval then usually
excludes 0). The same table as a pandas DataFrame: sparsebench.comparison.compare_runs.

\b
Examples:
  sparsebench compare 3 7                       # run 7 minus run 3, every shared metric
  sparsebench compare 3 7 --metric arc_easy/acc
  sparsebench compare 3 7 --all-seeds           # each side: its runs over every stored seed
"""


@click.command("compare", help=HELP)
@click.argument("run_a")
@click.argument("run_b")
@click.option("--metric", default=None, metavar="M", help="Only metric M (e.g. acc, perplexity) or TASK/M (e.g. arc_easy/acc_norm).")
@click.option("--all-seeds", is_flag=True, help="Compare every stored run that differs from RUN_A (and from RUN_B) only in seed "
              "(or in what it times): means over seeds, one run each, and an interval over items and seeds.")
@click.option("--db", default=None, help="SQLAlchemy URL of the results database (never created by this command).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True)
def command(run_a, run_b, metric, all_seeds, db, fmt) -> None:
    from ..comparison import compare_runs
    from ..store import Store
    from ..terminal import fit

    df = compare_runs(Store(db, create=False), run_a, run_b, metric=metric, all_seeds=all_seeds)
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
        return
    if fmt == "json":
        click.echo(df.to_json(orient="records", indent=2))
        return
    a, b = df.attrs["runs_a"], df.attrs["runs_b"]
    click.echo(f"A = run{'s' if len(a) > 1 else ''} {', '.join(map(str, a))}; B = run{'s' if len(b) > 1 else ''} {', '.join(map(str, b))}; "
               f"Δ = B − A, {LEVEL:.0%} interval, p-value", err=True)
    shown = df.assign(
        metric=[f"{t}/{m} {'↑' if h else '↓'}" for t, m, h in zip(df["task"], df["metric"], df["higher_is_better"])],
        interval=[f"[{lo:+.4g}, {hi:+.4g}]" for lo, hi in zip(df["ci_low"], df["ci_high"])],
        delta=[f"{d:+.4g}" for d in df["delta"]], p=[f"{p:.3g}" for p in df["p_value"]],
    )[["metric", "a", "b", "delta", "interval", "p", "test", "items"]]
    shown = shown.rename(columns={"a": "A", "b": "B", "delta": "Δ", "interval": f"{LEVEL:.0%} interval"})
    click.echo(shown.to_markdown(index=False, floatfmt=".4g", disable_numparse=True) if fmt == "markdown" else fit(shown))
