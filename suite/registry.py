"""One generic registry for methods, kernels, tasks, models and suites.

Built-ins register themselves with a decorator when their package is imported; the
package is imported lazily on first lookup, so ``import sparsebench`` stays cheap.
Third-party distributions add entries through the entry-point group
``sparsebench.<kind>s`` (for example ``sparsebench.methods``); each entry point loads an
object that is registered under the entry point's name (or imports a module that
registers itself).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from .errors import SparsebenchError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


class DuplicateNameError(SparsebenchError):
    """Two entries were registered under one name."""


class Registry(Generic[T]):
    """Name → object mapping with decorator registration, aliases and plugin discovery."""

    def __init__(self, kind: str, builtins: str | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self._builtins = builtins
        self._group = entry_point_group if entry_point_group is not None else f"sparsebench.{kind}s"
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False

    # -- registration -------------------------------------------------------------
    @overload
    def register(self, name: str, obj: None = None, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> T: ...

    def register(self, name, obj=None, *, aliases=()):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""

        def add(o: T) -> T:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise DuplicateNameError(f"{self.kind} {key!r} is already registered")
            self._entries[name] = o
            for a in aliases:
                self._aliases[a] = name
            if isinstance(o, type) and "name" not in o.__dict__:
                try:
                    o.name = name  # type: ignore[attr-defined]
                except TypeError:  # builtin types
                    pass
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plugin reloads)."""
        self._entries.pop(name, None)
        for a in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[a]

    # -- lookup ---------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins:
            importlib.import_module(self._builtins)
        for ep in importlib.metadata.entry_points(group=self._group):
            if ep.name in self._entries:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the tool
                warnings.warn(f"sparsebench: plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
                continue
            if ep.name not in self._entries and not isinstance(obj, type(importlib)):
                self.register(ep.name, obj)

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; raises with suggestions."""
        self._ensure_loaded()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        lowered = {k.lower(): k for k in (*self._entries, *self._aliases)}
        if name.lower() in lowered:
            return self.canonical(lowered[name.lower()])
        close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
        raise UnknownNameError(self.kind, name, [lowered[c] for c in close], self.list())

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries or name in self._aliases

    def list(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def aliases(self, name: str) -> list[str]:
        self._ensure_loaded()
        return sorted(a for a, n in self._aliases.items() if n == name)

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_loaded()
        return iter(sorted(self._entries.items()))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
