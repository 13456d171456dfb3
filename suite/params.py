"""Typed parameters and settings: declared ranges, conversion from strings or file values, validation.

A method's ``Params``, a task's ``Settings`` and a suite's calibration spec are frozen
dataclasses. A numeric field declares its range with :func:`param`::

    @dataclass(frozen=True)
    class OWLParams:
        m: float = param(5.0, gt=0)  # outlier threshold
        lam: float = param(0.08, ge=0, lt=1)

Every method's params are checked once, by the ``Method`` base, however they were made
(``--param`` on the CLI, a grid file, Python): each numeric value must be finite and
inside its range, else a one-line :class:`InvalidSpecError` names the parameter and range.
:func:`from_values` builds one of these dataclasses from a file's values (a suite's TOML
tables) and :func:`parse_string` reads one value from the command line (``--set``), both
with the same type and range checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidSpecError

_RANGE = "sparsebench.range"


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric parameter; ``None`` = unbounded on that side."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))

    def __str__(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if self.ge is not None else '>'} {low[1:]}"
        if high:
            return f"{'<=' if self.le is not None else '<'} {high[:-1]}"
        return ""


def param(default: Any, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None) -> Any:
    """A Params field with ``default`` whose value must lie in the given bounds."""
    return dataclasses.field(default=default, metadata={_RANGE: Range(ge, gt, le, lt)})


@dataclass(frozen=True)
class NumericParam:
    """A numeric field of a Params class: name, type (``int`` or ``float``) and declared range."""

    name: str
    type: type
    range: Range | None
    optional: bool


def _unwrap_optional(typ: Any) -> tuple[Any, bool]:
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(typ))
    return typ, False


def numeric_params(params_cls: type) -> list[NumericParam]:
    """The ``int`` and ``float`` fields of ``params_cls`` (``bool`` is not numeric here)."""
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        typ, optional = _unwrap_optional(hints[f.name])
        if typ in (int, float):
            out.append(NumericParam(f.name, typ, f.metadata.get(_RANGE), optional))
    return out


def check_params(owner: str, params: Any, noun: str = "parameter") -> None:
    """Raise :class:`InvalidSpecError` unless every numeric field of ``params`` is a finite
    number of its type inside its declared range."""
    for p in numeric_params(type(params)):
        _check_number(owner, noun, p, getattr(params, p.name))


def _check_number(owner: str, noun: str, p: NumericParam, value: Any) -> None:
    if value is None and p.optional:
        return
    ok_type = isinstance(value, int) if p.type is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise InvalidSpecError(f"{owner}: {noun} {p.name} must be {'an integer' if p.type is int else 'a number'}, got {value!r}")
    bounds = p.range or Range()
    if not math.isfinite(value) or value not in bounds:
        raise InvalidSpecError(f"{owner}: {noun} {p.name} must be a finite number {bounds}".rstrip() + f", got {value!r}")


def params_from_options(owner: str, params_cls: type, options: Mapping[str, str]) -> Any:
    """``params_cls`` built from string options (``--param k=v``), converted to the field types."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    kwargs: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in fields:
            raise InvalidSpecError(f"{owner} has no parameter {key!r}; it has: {', '.join(fields) or 'none'}")
        kwargs[key] = parse_string(raw, hints[key], f"{owner}: parameter {key}")
    try:
        return params_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(f"{owner}: {exc}") from None


def parse_string(raw: str, typ: Any, what: str) -> Any:
    """``raw`` (a command-line string) read as a value of the field type ``typ``
    (``none`` for an optional field's None)."""
    typ, optional = _unwrap_optional(typ)
    if optional and raw.lower() in ("none", "null"):
        return None
    if typing.get_origin(typ) is typing.Literal:
        return check_value(raw, typ, what)
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return typ(raw)
    except (TypeError, ValueError):
        raise InvalidSpecError(f"{what}: cannot read {raw!r} as {getattr(typ, '__name__', typ)}") from None


def did_you_mean(name: str, choices: Any) -> str:
    """``"did you mean 'x'? "`` for the choices close to ``name`` (or nothing), then all of them."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}(known: {', '.join(choices) or 'none'})"


def check_value(value: Any, typ: Any, what: str) -> Any:
    """``value`` as a file gives it (str, int, float, bool; None for an unset optional) if it
    is of the field type ``typ``; an int for a float field becomes a float."""
    typ, optional = _unwrap_optional(typ)
    if value is None and optional:
        return None
    if typing.get_origin(typ) is typing.Literal:
        if value not in typing.get_args(typ):
            raise InvalidSpecError(f"{what} must be one of {', '.join(map(repr, typing.get_args(typ)))}, got {value!r}")
        return value
    kinds = {bool: (bool, "true or false"), int: (int, "an integer"), float: ((int, float), "a number"), str: (str, "a string")}
    if typ not in kinds:
        raise TypeError(f"{what} has type {typ!r}, which a file cannot set")
    accepted, words = kinds[typ]
    if not isinstance(value, accepted) or (typ is not bool and isinstance(value, bool)):
        raise InvalidSpecError(f"{what} must be {words}, got {value!r}")
    return float(value) if typ is float else value


def from_values(owner: str, cls: type, values: Mapping[str, Any], noun: str = "setting") -> Any:
    """``cls`` (a frozen dataclass) from ``values`` as read from a file: unknown keys, wrong
    types, non-finite numbers and values outside a declared range are one-line errors."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise InvalidSpecError(f"{owner} has no {noun} {key!r}; {did_you_mean(key, names)}")
        kwargs[key] = check_value(value, hints[key], f"{owner}: {noun} {key}")
    for p in numeric_params(cls):
        if p.name in kwargs:
            _check_number(owner, noun, p, kwargs[p.name])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(f"{owner}: {exc}") from None
