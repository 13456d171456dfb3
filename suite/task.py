"""Task base class, metric rows and the task registry."""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .params import from_values
from .registry import Registry

if typing.TYPE_CHECKING:
    from .items import ItemScores
    from .models import LoadedModel, ModelKind


@dataclass(frozen=True)
class TaskMeta:
    """What a task measures. A changed ``version`` means a new leaderboard column."""

    name: str
    version: str
    metric: str  # the primary metric
    higher_is_better: bool
    modality: ModelKind
    dataset: str  # asset name(s)
    description: str = ""


@dataclass(frozen=True)
class Metric:
    """One measured number of one task."""

    task: str
    name: str
    value: float
    higher_is_better: bool
    task_version: str
    stderr: float | None = None
    n: int | None = None  # examples / tokens the value is over
    details: Mapping[str, Any] = field(default_factory=dict)
    items: ItemScores | None = None  # the per-item scores the value aggregates (documents, windows, queries, images)


@dataclass(frozen=True)
class NoSettings:
    pass


tasks: Registry[type[Task]] = Registry("task", builtins="sparsebench.tasks")

TaskClass = TypeVar("TaskClass", bound="type[Task]")


def register_task(cls: TaskClass) -> TaskClass:
    """Register a task class under its one name, ``cls.meta.name`` (a class decorator)."""
    return tasks.register(cls.meta.name, cls)


class Task(ABC):
    """A fixed evaluation. ``Settings`` is a frozen dataclass; suites choose its values."""

    meta: ClassVar[TaskMeta]
    Settings: ClassVar[type] = NoSettings

    def __init__(self, settings: Any = None):
        self.settings = settings if settings is not None else self.Settings()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], owner: str | None = None) -> Task:
        """The task with ``values`` (as a suite file gives them) for its settings; unknown
        keys, wrong types and out-of-range values are one-line errors naming ``owner``."""
        return cls(from_values(owner or f"task {cls.meta.name!r}", cls.Settings, values))

    def datasets(self) -> tuple[str, ...]:
        """The registered datasets the task reads with its settings (checked before a run
        loads the model; empty: the task checks its data itself)."""
        return ()

    @abstractmethod
    def evaluate(self, loaded: LoadedModel, progress: bool = True) -> list[Metric]:
        """Evaluate the (pruned) model in memory; return metric rows."""

    def metric(self, name: str, value: float, **kw: Any) -> Metric:
        higher = kw.pop("higher_is_better", self.meta.higher_is_better)
        return Metric(self.meta.name, name, float(value), higher, self.meta.version, **kw)
