"""lm-eval task configs for the zero-shot tasks: the standard one, and the same one pointed at local data.

The standard config is lm-eval's own YAML for the task, loaded by lm-eval's own loader (with its
``!function`` helpers such as HellaSwag's ``process_docs`` and Winogrande's
``doc_to_text``/``doc_to_choice``, choices and metrics). Only the one folder of lm-eval's task
tree that holds the task is indexed, not lm-eval's whole index of some 14,000 configs.

The offline config is the standard config with exactly three kinds of change:

* ``custom_dataset``: a reader of the resolved local ``save_to_disk`` folder instead of
  ``datasets.load_dataset`` from the hub;
* the split keys: the local folder holds one split, so ``training_split`` is dropped and the
  evaluated split sits under the key lm-eval would evaluate it from;
* nothing else. ``tests/test_zeroshot.py`` checks that both configs give the same prompts and
  targets for the same documents.

Nothing here scores anything: scoring is lm-eval's evaluator on lm-eval's HFLM.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from sparsebench.errors import SparsebenchError

from .data import ZEROSHOT_DATA, LocalSplit

_STRUCTURAL_KEYS = ("tag", "group", "task_list")  # lm-eval's factory drops these too


def lm_eval_task_folder(task: str) -> Path:
    """The folder of lm-eval's task tree that holds ``task``'s standard YAML config."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent / ZEROSHOT_DATA[task].lm_eval_folder


def task_manager(task: str):
    """lm-eval's task index over the one folder holding ``task`` (built once per process and folder)."""
    return _folder_index(lm_eval_task_folder(task))


@lru_cache(maxsize=None)
def _folder_index(folder: Path):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(folder), include_defaults=False)


def standard_config(task: str) -> dict[str, Any]:
    """lm-eval's standard config of ``task``, loaded from its YAML by lm-eval's own loader."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = task_manager(task).task_index.get(task)
    if entry is None or entry.yaml_path is None:
        raise SparsebenchError(f"lm-eval has no YAML task {task!r} in {lm_eval_task_folder(task)}")
    cfg = load_yaml(entry.yaml_path, resolve_func=True)
    for key in _STRUCTURAL_KEYS:
        cfg.pop(key, None)
    return cfg


def config_sha256(cfg: dict[str, Any]) -> str:
    """A stable hash of a config: functions count by their source code, not their address."""

    def encode(obj: Any) -> str:
        if callable(obj):
            try:
                return inspect.getsource(obj)
            except (OSError, TypeError):
                return repr(obj)
        return str(obj)

    canon = {k: v for k, v in cfg.items() if k != "custom_dataset"}
    return hashlib.sha256(json.dumps(canon, sort_keys=True, default=encode).encode()).hexdigest()


def _split_keys(std: dict[str, Any], split: str, keep_training: bool) -> dict[str, Any]:
    """Split keys so that lm-eval evaluates ``split`` (test_split wins over validation_split)."""
    as_test = std.get("test_split") == split
    return {
        "training_split": std.get("training_split") if keep_training else None,
        "validation_split": None if as_test else split,
        "test_split": split if as_test else None,
    }


def offline_config(task: str, split: str, path: Path, fmt: str) -> dict[str, Any]:
    """lm-eval's standard config of ``task``, reading ``split`` from the local folder ``path``."""
    cfg = standard_config(task)
    cfg.update(_split_keys(cfg, split, keep_training=False))
    cfg["custom_dataset"] = LocalSplit(str(path), fmt, split)
    return cfg


def online_config(task: str, split: str) -> dict[str, Any]:
    """lm-eval's standard config (hub download); only the evaluated split may be changed."""
    cfg = standard_config(task)
    if split != ZEROSHOT_DATA[task].standard_split:
        cfg.update(_split_keys(cfg, split, keep_training=True))
    return cfg


def build_task(cfg: dict[str, Any], num_fewshot: int):
    """An lm-eval ``ConfigurableTask`` from a config dict (this loads its dataset), to be evaluated
    with ``num_fewshot`` shots.

    lm-eval builds a task's few-shot pool when it builds the task: the training split, else the
    evaluated one, every document processed (HellaSwag: 10,042 documents, seconds per
    evaluation). It samples that pool only for shots > 0, so at 0 shots the pool is left empty;
    the prompts are the same (tests/test_zeroshot.py)."""
    from lm_eval.api.task import ConfigurableTask

    if num_fewshot == 0:
        cfg = {**cfg, "fewshot_config": {**(cfg.get("fewshot_config") or {}), "split": None, "samples": []}}
    return ConfigurableTask(config=cfg)
