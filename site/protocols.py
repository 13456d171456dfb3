"""The protocol of each leaderboard, published beside it as a suite file a reader can run and cite.

A board is one suite identity (name, version, settings digest; see
:class:`sparsebench.spec.SuiteIdentity`). Its protocol is the registered suite when that suite
has exactly this identity (written out resolved by :func:`sparsebench.suite_file.dump_suite`),
else the first of the given suite files (e.g. ``results/suites/*.toml``, the files the published
runs were swept with) that has it, published as written, comments included. A derived identity
(``NAME+HASH6``) that no file matches has no protocol to show: the page says so rather than
describe it with the registered suite's settings, which it does not have.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsebench.errors import SparsebenchError
from sparsebench.spec import SuiteIdentity
from sparsebench.suite_file import dump_suite, read_suite
from sparsebench.suites import Suite, suites

from .tables import slug


@dataclass(frozen=True)
class Protocol:
    """A board's suite: what it is, where it came from, and its file on the site."""

    suite: Suite
    source: str  # "registered in sparsebench X" or the suite file's path
    text: str  # the TOML published at ``path``
    path: str  # relative to the site root

    @property
    def description(self) -> str:
        return self.suite.description

    @property
    def calibration(self) -> str:
        return str(self.suite.calibration)


def protocol_path(identity: SuiteIdentity) -> str:
    return f"protocols/{slug(f'{identity.name}-v{identity.version}')}.toml"


def find_protocols(identities: Iterable[SuiteIdentity], files: Sequence[Path] = ()) -> dict[SuiteIdentity, Protocol]:
    """The protocol of each identity that the registry or one of ``files`` gives; the others are left out.
    A suite file that cannot be read is an error (it was published to describe these runs)."""
    from sparsebench import __version__

    wanted = set(identities)
    found: dict[SuiteIdentity, Protocol] = {}
    for ident in wanted:  # a derived name (NAME+HASH6) is never registered
        suite = suites.get(ident.name) if ident.name in suites else None
        if suite is not None and suite.identity() == ident:
            found[ident] = Protocol(suite, f"registered in sparsebench {__version__}", dump_suite(suite), protocol_path(ident))
    for path in files:
        try:
            suite = read_suite(path)
        except SparsebenchError as exc:
            raise SparsebenchError(f"suite file for the site: {exc}") from None
        ident = suite.identity()
        if ident in wanted and ident not in found:
            found[ident] = Protocol(suite, str(path), Path(path).read_text(encoding="utf-8"), protocol_path(ident))
    return found


def suite_files(folder: Path) -> list[Path]:
    """The suite files (``*.toml``) directly in ``folder``, sorted; none if it does not exist."""
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def identities(runs: pd.DataFrame) -> set[SuiteIdentity]:
    """The suite identity of every run in a runs frame (``Store.runs()``: its ``spec`` column)."""
    return {SuiteIdentity(**spec["identity"]["suite"]) for spec in runs["spec"]}
