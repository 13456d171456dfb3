"""Kernel timing rows as text: the console table of ``bench-kernels`` and the markdown limits table.

Every speedup is printed beside its two limits: the FLOP ideal 1/(1-s) and the bytes bound of
the kernel's packed format at one token (dense bytes / packed bytes), with the share of that
bound the speedup reaches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def ratio(v: Any) -> str:
    v = _num(v)
    return "-" if v is None else f"{v:.2f}x"


def share(v: Any) -> str:
    v = _num(v)
    return "-" if v is None else f"{v:.0%}"


def note(row: Mapping[str, Any]) -> str:
    """The reason a case was not timed, or a warning about a ratio no format can reach."""
    if isinstance(row.get("reason"), str) and row["reason"]:
        return row["reason"]
    details = row.get("details") if isinstance(row.get("details"), dict) else {}
    speedup, ideal, bound = _num(row.get("speedup")), _num(row.get("ideal_speedup")), _num(details.get("bytes_bound"))
    if speedup is not None and ideal is not None and speedup > 1.05 * ideal:
        return "above the FLOP ideal: the dense baseline was disturbed (noisy machine?)"
    if speedup is not None and bound is not None and speedup > 1.05 * bound and row.get("shape", {}).get("tokens") == 1:
        if details.get("cache") == "hot":
            return "above the bytes bound: hot, the packed weight stays cached and dense does not"
        return "above the bytes bound: dense is not memory-bound here, or was disturbed"
    return str(details.get("backend", ""))


def _flat(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    out = []
    for r in rows:
        d = r.get("details") if isinstance(r.get("details"), dict) else {}
        s = r["shape"]
        out.append(dict(shape=f"{s['out']}x{s['in']}", tokens=s.get("tokens"), pattern=r["pattern"], sparsity=r["sparsity"],
                        dtype=r["dtype"], cache=d.get("cache", "?"), threads=r.get("threads"), kernel=r["kernel"],
                        status=r["status"], median_s=_num(r.get("median_s")), p10_s=_num(r.get("p10_s")), p90_s=_num(r.get("p90_s")),
                        speedup=_num(r.get("speedup")), ideal=_num(r.get("ideal_speedup")), bytes_bound=_num(d.get("bytes_bound")),
                        share=_num(d.get("bytes_bound_share")), note=note(r)))
    return pd.DataFrame(out)


def console_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """One line per row: median, p10-p90, speedup, FLOP ideal, bytes bound and its share, note."""
    df = _flat(rows)
    ms = lambda v: "-" if v is None or v != v else f"{v * 1e3:.4g}"  # noqa: E731
    out = df.assign(
        median_ms=df["median_s"].map(ms),
        p10_p90_ms=[("-" if a is None or a != a else f"{a * 1e3:.3g}-{b * 1e3:.3g}") for a, b in zip(df["p10_s"], df["p90_s"])],
        speedup=df["speedup"].map(ratio), flop_ideal=df["ideal"].map(ratio), bytes_bound=df["bytes_bound"].map(ratio),
        of_bound=df["share"].map(share),
    )
    cols = ["shape", "tokens", "pattern", "sparsity", "kernel", "status", "median_ms", "p10_p90_ms", "speedup", "flop_ideal",
            "bytes_bound", "of_bound", "note"]
    return out[cols].to_string(index=False)


def markdown(rows: Iterable[Mapping[str, Any]]) -> str:
    """The limits table: one section per (shape, dtype, cache regime, threads), one line per (sparsity, tokens).

    Each kernel's cell is ``speedup (share of its bytes bound of bound)``; a case a kernel
    cannot run says so in one word (``unsupported`` / ``failed``); a kernel that runs none of
    a section's cases is listed under it with the reason.
    """
    df = _flat(rows)
    parts = []
    for (shape, dtype, cache, threads, pattern), g in df.groupby(["shape", "dtype", "cache", "threads", "pattern"], sort=True, dropna=False):
        never = {k: c["note"].iloc[0] for k, c in g.groupby("kernel", sort=False) if (c["status"] == "unsupported").all()}
        kernels = [k for k in dict.fromkeys(g["kernel"]) if k != "dense" and k not in never]
        lines = [f"### {shape}, {pattern}, {dtype}, {cache} cache, {threads} thread(s)", "",
                 "| sparsity | tokens | dense ms | FLOP ideal | " + " | ".join(kernels) + " |",
                 "|---|---|---|---|" + "---|" * len(kernels)]
        for (sparsity, tokens), c in g.groupby(["sparsity", "tokens"], sort=True):
            by = {r.kernel: r for r in c.itertuples()}
            dense = by.get("dense")
            cells = []
            for k in kernels:
                r = by.get(k)
                if r is None:
                    cells.append("")
                elif r.status != "ok":
                    cells.append(r.status)
                else:
                    cells.append(f"{ratio(r.speedup)} ({share(r.share)} of {ratio(r.bytes_bound)})")
            dense_ms = "-" if dense is None or dense.median_s is None else f"{dense.median_s * 1e3:.3g}"
            lines.append(f"| {sparsity:g} | {tokens} | {dense_ms} | {ratio(c['ideal'].iloc[0])} | " + " | ".join(cells) + " |")
        lines += ["", *(f"- `{k}`: unsupported ({why})" for k, why in never.items())] if never else []
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
