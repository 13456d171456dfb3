"""Import every module of a built-in package, so adding one file registers a new entry."""

from __future__ import annotations

import importlib
import pkgutil


def import_all(package: str, path: list[str]) -> None:
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
