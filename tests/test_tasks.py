"""The task contract, for every registered task: one name, known datasets, default settings."""

from __future__ import annotations

import dataclasses

import pytest

from sparsebench.data import datasets
from sparsebench.task import Metric, Task, TaskMeta, register_task, tasks

TASKS = tasks.list()


@pytest.mark.parametrize("name", TASKS)
def test_registered_under_its_meta_name(name):
    assert tasks.get(name).meta.name == name


@pytest.mark.parametrize("name", TASKS)
def test_datasets_are_registered_assets(name):
    for asset in tasks.get(name).meta.dataset.split(","):
        assert asset in datasets, f"{name}: dataset {asset!r} is not a registered asset"


@pytest.mark.parametrize("name", TASKS)
def test_default_settings_build(name):
    cls = tasks.get(name)
    assert dataclasses.is_dataclass(cls.Settings) and cls.Settings.__dataclass_params__.frozen
    assert isinstance(cls.from_mapping({}), cls)


def test_register_task_takes_the_name_from_meta():
    @register_task
    class Dummy(Task):
        meta = TaskMeta("unit-dummy-task", "1", "x", True, "causal-lm", "lambada-text")

        def evaluate(self, loaded, progress=True) -> list[Metric]:
            return []

    try:
        assert tasks.get("unit-dummy-task") is Dummy
    finally:
        tasks.unregister("unit-dummy-task")
