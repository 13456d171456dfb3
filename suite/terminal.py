"""Plain-text tables that fit the terminal: the widest columns wrap until the table fits.

The width is ``$COLUMNS`` if set, else the terminal's; output to a pipe or a file (no
terminal) is not wrapped, so scripts see one line per row.
"""

from __future__ import annotations

import math
import shutil
import textwrap

import pandas as pd
from tabulate import tabulate

MIN_WIDTH = 4  # a column is never wrapped narrower than this
GAP = 2  # spaces between columns in tabulate's "simple" format
PADDING = 2  # tabulate draws a column this much wider than its header


def cell(value: object) -> str:
    """How one value is printed: floats with 4 significant digits, missing values as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def terminal_width() -> int | None:
    """``$COLUMNS``, else the terminal's width; None when there is no terminal (a pipe, a file)."""
    return shutil.get_terminal_size(fallback=(0, 0)).columns or None


def _rendered(width: int, header: str) -> int:
    """How wide tabulate draws a column wrapped at ``width``: its header lines get 2 spaces of padding."""
    return max(width, max((len(line) for line in textwrap.wrap(header, width)), default=0) + PADDING)


def column_widths(natural: list[int], width: int | None, headers: list[str]) -> list[int]:
    """Shrink the widest column, one character at a time, until the table fits ``width`` (None: no
    limit); a column never gets narrower than :data:`MIN_WIDTH` or the longest word of its header."""
    widths = list(natural)
    floors = [min(n, max(MIN_WIDTH, *(len(word) for word in h.split()))) for n, h in zip(natural, headers)]
    while width is not None and sum(_rendered(w, h) for w, h in zip(widths, headers)) + GAP * (len(widths) - 1) > width:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break  # as narrow as it gets: the table is wider than the terminal
        widest = max(shrinkable, key=widths.__getitem__)
        widths[widest] -= 1
    return widths


def fit(df: pd.DataFrame, width: int | None = None) -> str:
    """``df`` as a table no wider than ``width`` (default: :func:`terminal_width`), wrapping long cells."""
    width = width or terminal_width()
    headers = [str(c) for c in df.columns]
    rows = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    natural = [max([len(h), *(len(line) for r in rows for line in r[i].splitlines() or [""])]) for i, h in enumerate(headers)]
    widths = column_widths(natural, width, headers)
    align = ["right" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) else "left" for c in df.columns]
    return tabulate(rows, headers, tablefmt="simple", maxcolwidths=widths, maxheadercolwidths=widths, colalign=align,
                    disable_numparse=True)
