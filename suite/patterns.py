"""Sparsity patterns as types.

A pattern says *which* zeros are allowed; the target sparsity says *how many*.
Strings such as ``"2:4"`` are parsed only at the edges (CLI, grid files) by
:func:`parse_pattern`; everything inside works with these frozen dataclasses.

N:M follows the hardware convention: at most ``n`` non-zeros in every group of ``m``
consecutive weights along the input dimension (2:4 keeps 2 of every 4, i.e. 50%).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union

from .errors import InvalidSpecError


@dataclass(frozen=True)
class Unstructured:
    """Any weight may be zero. ``scope`` is where scores compete: within each layer, or across all layers."""

    scope: Literal["layer", "global"] = "layer"

    def __post_init__(self) -> None:
        if self.scope not in ("layer", "global"):
            raise InvalidSpecError(f"unstructured scope must be 'layer' or 'global', got {self.scope!r}")

    @property
    def implied_sparsity(self) -> float | None:
        return None

    def __str__(self) -> str:
        return "unstructured" if self.scope == "layer" else "unstructured-global"


@dataclass(frozen=True)
class NM:
    """At most ``n`` non-zeros in every ``m`` consecutive input weights of each row."""

    n: int
    m: int

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and isinstance(self.m, int)) or not 0 < self.n < self.m:
            raise InvalidSpecError(f"N:M pattern needs 0 < N < M, got {self.n}:{self.m}")

    @property
    def implied_sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True)
class Block:
    """Whole ``rows × cols`` tiles of the weight matrix are zero or kept together."""

    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not (isinstance(self.rows, int) and isinstance(self.cols, int)) or self.rows < 1 or self.cols < 1:
            raise InvalidSpecError(f"block pattern needs positive sizes, got {self.rows}x{self.cols}")

    @property
    def implied_sparsity(self) -> float | None:
        return None

    def __str__(self) -> str:
        return f"block{self.rows}x{self.cols}"


Pattern = Union[Unstructured, NM, Block]

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_BLOCK = re.compile(r"^\s*(?:block)?\s*(\d+)\s*x\s*(\d+)\s*$", re.IGNORECASE)


def parse_pattern(text: str) -> Pattern:
    """Parse ``unstructured``, ``unstructured-global``, ``N:M`` or ``blockRxC`` (CLI edge only)."""
    t = text.strip().lower()
    if t in ("unstructured", "unstructured-layer", "layer"):
        return Unstructured()
    if t in ("unstructured-global", "global"):
        return Unstructured("global")
    if m := _NM.match(t):
        return NM(int(m.group(1)), int(m.group(2)))
    if m := _BLOCK.match(t):
        return Block(int(m.group(1)), int(m.group(2)))
    raise InvalidSpecError(
        f"cannot parse pattern {text!r}; use 'unstructured', 'unstructured-global', 'N:M' (e.g. 2:4) or 'blockRxC' (e.g. block4x4)"
    )


def resolve_sparsity(pattern: Pattern, sparsity: float | None) -> float:
    """The target sparsity for ``pattern``: N:M implies its own; others need one in [0, 1)."""
    implied = pattern.implied_sparsity
    if implied is not None:
        if sparsity is not None and abs(sparsity - implied) > 1e-9:
            raise InvalidSpecError(f"pattern {pattern} implies sparsity {implied:g}, but {sparsity:g} was requested")
        return implied
    if sparsity is None:
        return 0.5
    if not 0.0 <= sparsity < 1.0:
        raise InvalidSpecError(f"sparsity must be in [0, 1), got {sparsity:g}")
    return float(sparsity)
