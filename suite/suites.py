"""Suites: named, versioned protocols (calibration + tasks + their settings).

A suite is written as a TOML file (:mod:`sparsebench.suite_file`); the built-in ones ship
in ``sparsebench/builtin_suites/`` and plugins register :class:`Suite` objects under the
entry-point group ``sparsebench.suites``. A suite's task tables may also cover tasks outside
its default list, so ``--task wikitext2`` under ``quick`` evaluates the quick subset.

Its *effective settings* (:meth:`Suite.settings`) are everything that defines its numbers,
resolved: the modality, the default tasks, the calibration spec and every task table with
all its settings, defaults filled in. Its identity is its name, version and the digest of
those settings. A suite whose settings are not the registered suite's of its name and
version (an edited copy of a file, a run with ``--set`` or ``--calibration``, a file of a
name nobody registered) is stored under the derived name ``NAME+HASH6``: it never lands on
a registered suite's leaderboard. Results compare only within one suite identity; change a
registered suite's settings, bump its version.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from .calibration_data import CalibrationSpec
from .errors import InvalidSpecError, SparsebenchError
from .models import ModelKind
from .params import check_params, did_you_mean, from_values, parse_string
from .registry import Registry
from .spec import SuiteIdentity, digest
from .task import Task, tasks
from .tasks.imagenet.data import is_image_asset
from .text import is_text_asset

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DERIVED = "+"  # NAME+HASH6: a suite whose settings are not the registered ones of its name and version
CALIBRATION = "calibration"  # the calibration table's name in a file and in --set


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    calibration: CalibrationSpec
    tasks: tuple[str, ...]
    # task name -> its Settings instance (a mapping of values is checked and converted)
    task_settings: Mapping[str, Any] = field(default_factory=dict)
    modality: ModelKind = "causal-lm"
    # where it comes from: a file, and the run options that changed it (messages, provenance)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        try:
            self._check()
        except SparsebenchError as exc:
            raise InvalidSpecError(f"{self.origin}: {exc}") from None

    def _check(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise InvalidSpecError(f"name must be letters, digits, '.', '_' or '-' (starting with a letter or digit), got {self.name!r}")
        if not isinstance(self.version, str) or not self.version.strip():
            raise InvalidSpecError(f"version must be a non-empty string, got {self.version!r}")
        if self.modality not in typing.get_args(ModelKind):
            raise InvalidSpecError(f"modality must be one of {', '.join(typing.get_args(ModelKind))}, got {self.modality!r}")
        if not isinstance(self.calibration, CalibrationSpec):
            raise InvalidSpecError(f"calibration must be a CalibrationSpec, got {type(self.calibration).__name__}")
        try:
            self.calibration.check_names()
        except SparsebenchError as exc:
            raise InvalidSpecError(f"[{CALIBRATION}]: {exc}") from None
        dataset = self.calibration.dataset
        if not (is_image_asset(dataset) or is_text_asset(dataset)):
            raise InvalidSpecError(f"[{CALIBRATION}]: dataset {dataset!r} is neither text nor an image set (see `sparsebench list datasets`)")
        if is_image_asset(dataset) != (self.modality == "image-classification"):
            kind = "an image set" if is_image_asset(dataset) else "a text dataset"
            raise InvalidSpecError(f"[{CALIBRATION}]: {dataset!r} is {kind}, which cannot calibrate {self.modality} models")
        if not self.tasks:
            raise InvalidSpecError("tasks must name at least one task")
        object.__setattr__(self, "tasks", self.task_list(tuple(self.tasks)))
        settings = {}
        for name, values in self.task_settings.items():
            (task,) = self.task_list((name,))
            if task in settings:
                raise InvalidSpecError(f"[{name}] gives the settings of {task!r} a second time")
            settings[task] = _task_settings(task, values)
        for task in self.tasks:  # resolved: every default task has its settings, defaults filled in
            settings.setdefault(task, _task_settings(task, {}))
        object.__setattr__(self, "task_settings", dict(sorted(settings.items())))

    def __str__(self) -> str:
        return f"{self.identity().name} v{self.version}"

    @property
    def origin(self) -> str:
        return self.source or f"suite {self.name!r}"

    # -- what the suite is -----------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The effective settings (JSON values): what defines the numbers, resolved."""
        return {
            "modality": self.modality,
            "tasks": list(self.tasks),
            CALIBRATION: dataclasses.asdict(self.calibration),
            "task_settings": {name: dataclasses.asdict(s) for name, s in self.task_settings.items()},
        }

    @cached_property
    def settings_digest(self) -> str:
        return digest(self.settings())

    def identity(self) -> SuiteIdentity:
        """Name (derived unless these are the registered suite's settings), version, settings digest."""
        registered = suites.get(self.name) if self.name in suites else None
        same = registered is not None and registered.version == self.version and registered.settings_digest == self.settings_digest
        return SuiteIdentity(self.name if same else f"{self.name}{DERIVED}{self.settings_digest[:6]}", self.version, self.settings_digest)

    # -- using it ---------------------------------------------------------------------
    def settings_of(self, task: str) -> Any:
        """The Settings the suite gives ``task`` (the task's defaults where it has no table)."""
        cls = tasks.get(task)
        return self.task_settings[cls.meta.name] if cls.meta.name in self.task_settings else cls.Settings()

    def make_task(self, name: str) -> Task:
        return tasks.get(name)(self.settings_of(name))

    def task_list(self, override: tuple[str, ...] | None = None) -> tuple[str, ...]:
        names = tuple(tasks.canonical(t) for t in (override or self.tasks))
        for n in names:
            modality = tasks.get(n).meta.modality
            if modality != self.modality:
                raise InvalidSpecError(f"task {n!r} is for {modality} models, suite {self.name!r} for {self.modality}")
        return names

    # -- one-run changes ----------------------------------------------------------------
    def with_calibration(self, text: str) -> Suite:
        """This suite calibrated on ``DATASET:NxL[@SEED]`` (``--calibration``)."""
        return replace(self, calibration=self.calibration.overridden(text), source=f"{self.origin} --calibration {text}")

    def with_settings(self, assignments: Sequence[str]) -> Suite:
        """This suite with ``TABLE.KEY=VALUE`` assignments (``--set``; TABLE is a task or
        ``calibration``), each value read as its setting's type and checked as in a file."""
        calibration, task_settings = self.calibration, dict(self.task_settings)
        for text in assignments:
            path, eq, raw = text.partition("=")
            table, dot, key = path.strip().partition(".")
            if not eq or not dot or not table or not key:
                raise InvalidSpecError(f"--set takes TASK.KEY=VALUE or calibration.KEY=VALUE, got {text!r}")
            if table == CALIBRATION:
                calibration = _assign(f"--set {CALIBRATION}", calibration, key.strip(), raw.strip())
            else:
                try:
                    (task,) = self.task_list((table,))
                except SparsebenchError as exc:
                    raise InvalidSpecError(f"--set {path.strip()}: {exc}") from None
                current = task_settings[task] if task in task_settings else self.settings_of(task)
                task_settings[task] = _assign(f"--set {task}", current, key.strip(), raw.strip())
        return replace(self, calibration=calibration, task_settings=task_settings,
                       source=" ".join([self.origin, *(f"--set {a}" for a in assignments)]))


def _task_settings(task: str, values: Any) -> Any:
    """``values`` (a mapping, or the task's Settings) as the task's checked Settings."""
    cls = tasks.get(task)
    if isinstance(values, Mapping):
        return cls.from_mapping(values, f"[{task}]").settings
    if type(values) is not cls.Settings:
        raise InvalidSpecError(f"[{task}] must be a table of settings or a {cls.Settings.__name__}, got {type(values).__name__}")
    check_params(f"[{task}]", values, "setting")
    cls(values)  # the task's own checks
    return values


def _assign(owner: str, current: Any, key: str, raw: str) -> Any:
    """``current`` (a settings dataclass) with ``key`` set to ``raw`` read as that setting's type."""
    hints = typing.get_type_hints(type(current))
    names = [f.name for f in dataclasses.fields(current)]
    if key not in names:
        raise InvalidSpecError(f"{owner} has no setting {key!r}; {did_you_mean(key, names)}")
    values = {**dataclasses.asdict(current), key: parse_string(raw, hints[key], f"{owner}: setting {key}")}
    return from_values(owner, type(current), values)


suites: Registry[Suite] = Registry("suite", builtins="sparsebench.builtin_suites")
