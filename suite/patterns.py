"""Sparsity patterns as types, and the comparison group scores compete in.

A pattern says *which* zeros are allowed; the target sparsity says *how many*.
Strings such as ``"2:4"`` are parsed only at the edges (CLI, grid files) by
:func:`parse_pattern`; everything inside works with these frozen dataclasses. Each
pattern owns its shape rule (:meth:`check_shape`).

N:M follows the hardware convention: at most ``n`` non-zeros in every group of ``m``
consecutive weights along the input dimension (2:4 keeps 2 of every 4, i.e. 50%).

Where unstructured scores compete is a :class:`Group`: the whole ``layer``, each output
``row``, or ``global`` (every layer against one threshold). Every method declares its
own group (magnitude: the layer; Wanda: each row); the pattern ``unstructured-global``
overrides it. The rule, in :func:`comparison_group`: *the pattern's group if it names one,
else the method's*. N:M and block patterns fix their own competitions (``m`` consecutive
inputs; tiles within a layer) and name no group.

Structured targets (:class:`Depth`, :class:`Heads`, :class:`Channels`) remove whole units
instead of zeroing weights: the model becomes a smaller dense model. Their sparsity is the
fraction of the *targeted* parameters removed (every block's parameters; the attention
projections; the MLP projections), see :mod:`sparsebench.structure`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Union

from .errors import InvalidSpecError


class Group(str, Enum):
    """Where scores compete for an unstructured sparsity budget."""

    LAYER = "layer"  # exactly the target fraction of each layer
    ROW = "row"  # exactly the target fraction of each output row
    GLOBAL = "global"  # the target fraction of all targeted weights, one threshold across layers

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Unstructured:
    """Any weight may be zero. ``group`` None: scores compete in the method's own group;
    :attr:`Group.GLOBAL`: across all layers."""

    group: Group | None = None

    def __post_init__(self) -> None:
        if self.group not in (None, Group.GLOBAL):
            raise InvalidSpecError(f"an unstructured pattern names no group or the global one, got {self.group!r}")
        if self.group is not None:
            object.__setattr__(self, "group", Group(self.group))

    @property
    def implied_sparsity(self) -> float | None:
        return None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Any ``[out, in]`` shape can take an unstructured mask."""

    def __str__(self) -> str:
        return "unstructured" if self.group is None else f"unstructured-{self.group.value}"


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

    @property
    def group(self) -> None:
        return None  # the groups are m consecutive inputs

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise unless the input size (``shape[-1]``) is a multiple of ``m``."""
        if shape[-1] % self.m:
            raise InvalidSpecError(f"{self} needs the input size ({shape[-1]}) to be a multiple of {self.m}")

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

    @property
    def group(self) -> None:
        return None  # tiles compete within their layer

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise unless an ``[out, in]`` shape divides into whole tiles."""
        rows, cols = shape
        if rows % self.rows or cols % self.cols:
            raise InvalidSpecError(f"{self} needs the weight shape {rows}x{cols} to be divisible by {self.rows}x{self.cols}")

    def __str__(self) -> str:
        return f"block{self.rows}x{self.cols}"


class Structured:
    """A structured target: whole units go and the model shrinks (no mask, no zeros)."""

    unit: ClassVar[str] = ""

    @property
    def implied_sparsity(self) -> float | None:
        return None

    @property
    def group(self) -> None:
        return None  # the units compete as :func:`sparsebench.structure.select_plan` says

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Any layer shape: the units are found by the model's adapter, not in a weight's shape."""

    def __str__(self) -> str:
        return self.unit


@dataclass(frozen=True)
class Depth(Structured):
    """Whole blocks (decoder layers) are removed."""

    unit: ClassVar[str] = "depth"


@dataclass(frozen=True)
class Heads(Structured):
    """Attention heads are removed (the same number in every block, GQA kept consistent)."""

    unit: ClassVar[str] = "heads"


@dataclass(frozen=True)
class Channels(Structured):
    """MLP intermediate channels are removed (the same number in every block)."""

    unit: ClassVar[str] = "channels"


STRUCTURED: tuple[type[Structured], ...] = (Depth, Heads, Channels)

Pattern = Union[Unstructured, NM, Block, Depth, Heads, Channels]


def comparison_group(pattern: Pattern, method_group: Group) -> Group:
    """Where scores compete: the pattern's group if it names one (``unstructured-global``),
    else the method's own. Only unstructured selection reads it."""
    return pattern.group or method_group


def fits(pattern: Pattern, shape: tuple[int, ...]) -> bool:
    """Whether a weight of ``shape`` can take ``pattern``."""
    try:
        pattern.check_shape(shape)
    except InvalidSpecError:
        return False
    return True


_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_BLOCK = re.compile(r"^\s*(?:block)?\s*(\d+)\s*x\s*(\d+)\s*$", re.IGNORECASE)


def parse_pattern(text: str) -> Pattern:
    """Parse ``unstructured``, ``unstructured-global``, ``N:M``, ``blockRxC``, ``depth``, ``heads`` or
    ``channels`` (CLI edge only)."""
    t = text.strip().lower()
    if t == "unstructured":
        return Unstructured()
    if t in ("unstructured-global", "global"):
        return Unstructured(Group.GLOBAL)
    for cls in STRUCTURED:
        if t == cls.unit:
            return cls()
    if m := _NM.match(t):
        return NM(int(m.group(1)), int(m.group(2)))
    if m := _BLOCK.match(t):
        return Block(int(m.group(1)), int(m.group(2)))
    raise InvalidSpecError(
        f"cannot parse pattern {text!r}; use 'unstructured', 'unstructured-global', 'N:M' (e.g. 2:4), 'blockRxC' (e.g. block4x4), "
        "or a structured target: 'depth', 'heads' or 'channels'"
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
