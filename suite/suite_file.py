"""Suites as TOML files: read and check one, write one back, resolve a ``--suite`` argument.

A suite file::

    name = "quick"
    version = "2"
    modality = "causal-lm"
    description = "what it measures, in a sentence or two"
    tasks = ["lambada-ppl", "arc_easy"]

    [calibration]
    dataset = "lambada-text"     # a registered dataset (sparsebench list datasets)
    nsamples = 32
    seqlen = 512
    seed = 0
    rule = "documents"           # a sampling rule (sparsebench list sampling-rules)

    [lambada-ppl]                # one table per task: its settings
    seqlen = 2048
    windows = 4

Every top-level table other than ``calibration`` is a task's settings; ``--set TASK.KEY=VALUE``
names the same keys. TOML has no null: a setting left out takes the task's default, and
:func:`dump_suite` writes a setting whose value is None as a comment. Every error is one
line naming the file.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from .calibration_data import CalibrationSpec, sampling_rules
from .data import datasets
from .errors import InvalidSpecError, SparsebenchError
from .params import did_you_mean, from_values
from .suites import CALIBRATION, Suite, suites
from .task import tasks

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TOP_LEVEL = {"name": str, "version": str, "modality": str, "description": str, "tasks": list}
REQUIRED = ("name", "version", "tasks", CALIBRATION)


def parse_suite(text: str, source: str) -> Suite:
    """The suite a TOML document describes; :class:`InvalidSpecError` (one line) if it is malformed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSpecError(f"{source}: not valid TOML: {exc}") from None
    try:
        return _suite(data, source)
    except InvalidSpecError as exc:
        raise exc if str(exc).startswith(f"{source}:") else InvalidSpecError(f"{source}: {exc}") from None
    except SparsebenchError as exc:
        raise InvalidSpecError(f"{source}: {exc}") from None


def _suite(data: dict[str, Any], source: str) -> Suite:
    for key, value in data.items():
        if isinstance(value, dict):
            continue  # the calibration table or a task's settings
        if key not in TOP_LEVEL:
            raise InvalidSpecError(f"unknown key {key!r}; {did_you_mean(key, [*TOP_LEVEL, CALIBRATION])}")
        kind = TOP_LEVEL[key]
        if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
            raise InvalidSpecError(f"{key} must be {'a string' if kind is str else 'a list of task names'}, got {value!r}")
    for key in REQUIRED:
        if key not in data:
            raise InvalidSpecError(f"missing {key!r}" + (" (a [calibration] table)" if key == CALIBRATION else ""))
    if not isinstance(data[CALIBRATION], dict):
        raise InvalidSpecError(f"{CALIBRATION} must be a table, got {data[CALIBRATION]!r}")
    calibration = from_values(f"[{CALIBRATION}]", CalibrationSpec, data[CALIBRATION])
    tables = {k: v for k, v in data.items() if isinstance(v, dict) and k != CALIBRATION}
    return Suite(data["name"], data["version"], data.get("description", ""), calibration, tuple(data["tasks"]), tables,
                 data.get("modality", "causal-lm"), source=source)


def read_suite(path: str | Path) -> Suite:
    """The suite in the TOML file ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpecError(f"cannot read suite file {str(p)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_suite(text, str(p))


def load_suite(ref: str | Suite) -> Suite:
    """A registered suite's name, a suite file's path (``*.toml``, or any existing file), or a Suite."""
    if isinstance(ref, Suite):
        return ref
    if ref.endswith(".toml") or Path(ref).is_file():
        return read_suite(ref)
    return suites.get(ref)


def dump_suite(suite: Suite) -> str:
    """The suite as a TOML document with every setting resolved: :func:`parse_suite` reads it
    back to a suite with the same settings (so the same identity)."""
    import tomlkit

    ident = suite.identity()
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"suite {ident.name} v{ident.version}, settings {ident.settings[:12]}; "
                            "run it with: sparsebench run --suite THIS_FILE"))
    doc.add(tomlkit.comment("an edited copy is stored as NAME+HASH (its own leaderboard); to publish one, give it a new name"))
    doc["name"] = suite.name
    doc["version"] = suite.version
    doc["modality"] = suite.modality
    doc["description"] = suite.description
    doc["tasks"] = list(suite.tasks)
    notes = {"dataset": datasets.get(suite.calibration.dataset).description, "rule": sampling_rules.get(suite.calibration.rule).description}
    doc[CALIBRATION] = _table(suite.calibration, "calibration of the methods that calibrate", notes)
    for name, settings in suite.task_settings.items():
        doc[name] = _table(settings, tasks.get(name).meta.description)
    return tomlkit.dumps(doc)


def _table(settings: Any, title: str, notes: dict[str, str] | None = None):  # noqa: ANN202 (a tomlkit Table)
    import tomlkit

    table = tomlkit.table()
    table.comment(title)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            table.add(tomlkit.comment(f"{f.name}: not set (None)"))
            continue
        item = tomlkit.item(value)
        if notes and f.name in notes:
            item.comment(notes[f.name])
        table[f.name] = item
    return table
