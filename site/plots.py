"""Scatter plots as plain geometry for an inline-SVG template (no plotting library, no network).

:func:`scatter` turns points into pixel coordinates, ticks and a legend; the template only
loops over them. The Pareto front (points no other point beats on both axes) is marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
WIDTH, HEIGHT = 620, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 16, 48


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    series: str
    label: str  # tooltip text


@dataclass(frozen=True)
class Dot:
    cx: float
    cy: float
    color: str
    label: str
    pareto: bool


@dataclass(frozen=True)
class Tick:
    pos: float
    text: str


@dataclass(frozen=True)
class LegendItem:
    y: float
    color: str
    text: str


@dataclass(frozen=True)
class Plot:
    title: str
    x_label: str
    y_label: str
    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_right: int
    plot_bottom: int
    dots: tuple[Dot, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]
    front: str  # SVG polyline points of the Pareto front
    lines: tuple[tuple[str, str, str], ...]  # (points, color, label) reference curves
    caption: str
    subject: str = ""  # what sets it apart from its board's other plots of one kind (the hardware); part of its file name


def pareto(points: Sequence[Point], x_higher: bool, y_higher: bool) -> list[Point]:
    """Points not dominated by another (at least as good on both axes, better on one), by x."""
    sx, sy = (1 if x_higher else -1), (1 if y_higher else -1)
    best: list[Point] = []
    for p in sorted(points, key=lambda p: (-sx * p.x, -sy * p.y)):
        if not best or sy * p.y > sy * best[-1].y:
            best.append(p)
    return sorted(best, key=lambda p: p.x)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e6 or abs(v) < 0.01:
        return f"{v:.2g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo or abs(hi) or 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = [10.0**e * m for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if lo <= t <= hi]
    return inside if len(inside) <= 8 else [t for t in inside if math.log10(t).is_integer()] or inside[:1]


class _Axis:
    def __init__(self, values: Sequence[float], pixels: tuple[float, float], log: bool, include: Sequence[float] = ()):
        vals = [*values, *include]
        self.log = log and min(vals) > 0
        f = math.log10 if self.log else float
        lo, hi = f(min(vals)), f(max(vals))
        pad = (hi - lo) * 0.06 or (abs(hi) * 0.1 if hi else 0.5)
        self.lo, self.hi = lo - pad, hi + pad
        self.p0, self.p1 = pixels
        self.f = f

    def __call__(self, v: float) -> float:
        return round(self.p0 + (self.f(v) - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0), 2)

    def ticks(self) -> tuple[Tick, ...]:
        if self.log:
            vals = _log_ticks(10**self.lo, 10**self.hi)
        else:
            vals = _nice_ticks(self.lo, self.hi)
        return tuple(Tick(self(v), _fmt(v)) for v in vals)


def scatter(
    points: Sequence[Point],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_higher: bool = True,
    y_higher: bool = True,
    y_log: bool | None = None,
    x_include: Sequence[float] = (),
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]] = (),
    caption: str = "",
    front: bool = True,
) -> Plot:
    """A scatter plot of ``points`` coloured by series, with the Pareto front and reference ``lines``."""
    if not points:
        raise ValueError("a plot needs at least one point")
    ys = [p.y for p in points]
    if y_log is None:  # perplexities span orders of magnitude once pruning breaks a model
        y_log = min(ys) > 0 and max(ys) / min(ys) > 20
    line_x = [x for _, pts in lines for x, _ in pts]
    line_y = [y for _, pts in lines for _, y in pts]
    xa = _Axis([p.x for p in points] + line_x, (LEFT, WIDTH - RIGHT), False, x_include)
    ya = _Axis(ys + line_y, (HEIGHT - BOTTOM, TOP), y_log)
    series = list(dict.fromkeys(p.series for p in points))
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    front_pts = pareto(points, x_higher, y_higher) if front else []
    on_front = {id(p) for p in front_pts}
    dots = tuple(Dot(xa(p.x), ya(p.y), color[p.series], p.label, id(p) in on_front) for p in points)
    legend = [LegendItem(TOP + 14 + 18 * i, color[s], _short(s)) for i, s in enumerate(series)]
    ref = []
    for i, (label, pts) in enumerate(lines):
        c = "#555555" if i == 0 else PALETTE[(len(series) + i) % len(PALETTE)]
        ref.append((" ".join(f"{xa(x)},{ya(y)}" for x, y in pts), c, label))
        legend.append(LegendItem(TOP + 14 + 18 * len(legend), c, f"— {label}"))
    return Plot(
        title, x_label, y_label + (" (log scale)" if ya.log else ""), WIDTH, HEIGHT, LEFT, TOP, WIDTH - RIGHT,
        HEIGHT - BOTTOM, dots, xa.ticks(), ya.ticks(), tuple(legend),
        " ".join(f"{xa(p.x)},{ya(p.y)}" for p in front_pts), tuple(ref), caption,
    )
