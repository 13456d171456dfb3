"""The three WikiText-2 test streams: each its own dataset id, read exactly as documented, never mixed."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from sparsebench.data import Resolved, Source
from sparsebench.task import tasks
from sparsebench.text import _files, load_documents

# a hub split's rows: an empty row for every blank line of the raw file
ROWS = ["", " = Title = \n", "", " First paragraph . \n", " Second one . \n", "", " = = Section = = \n", ""]


class _Chars:
    def __call__(self, text, return_tensors="pt"):
        return SimpleNamespace(input_ids=torch.tensor([[ord(c) for c in text]]))


@pytest.fixture
def wikitext_dir(tmp_path, monkeypatch):
    (tmp_path / "wikitext-2-raw-v1").mkdir()
    pd.DataFrame({"text": ROWS}).to_parquet(tmp_path / "wikitext-2-raw-v1" / "test-00000-of-00001.parquet")
    (tmp_path / "wikitext-2-raw").mkdir()
    (tmp_path / "wikitext-2-raw" / "wiki.test.raw").write_bytes("".join(ROWS).replace("\n", "\r\n").encode())
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(tmp_path))
    load_documents.cache_clear()
    yield tmp_path
    load_documents.cache_clear()


def _stream(dataset: str) -> str:
    task = tasks.get("wikitext2").from_mapping({"dataset": dataset})
    ids = task.token_stream(SimpleNamespace(processor=_Chars()), None)
    return "".join(map(chr, ids.tolist()))


def test_each_stream_is_what_its_dataset_id_says(wikitext_dir):
    rows = _stream("wikitext2-test-rows")
    raw = _stream("wikitext2-test-raw")
    nonempty = _stream("wikitext2-test")
    assert rows == "\n\n".join(ROWS)  # the reference scripts' stream, empty rows included
    assert raw == "".join(ROWS)  # the raw file tokenized whole (CRLF read as "\n")
    assert nonempty == "\n\n".join(r for r in ROWS if r.strip())  # sparsebench's stream: empty rows dropped
    assert len({rows, raw, nonempty}) == 3


def test_the_rows_stream_never_falls_back_to_the_raw_file(wikitext_dir, monkeypatch):
    from sparsebench.errors import DataNotFoundError

    (wikitext_dir / "wikitext-2-raw-v1" / "test-00000-of-00001.parquet").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="offline, the raw file is a different stream: dataset wikitext2-test-raw"):
        _stream("wikitext2-test-rows")
    assert _stream("wikitext2-test-raw") == "".join(ROWS)


def test_the_metric_records_its_dataset(wikitext_dir, tiny_model_dirs):
    from sparsebench.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    (row,) = tasks.get("wikitext2").from_mapping({"dataset": "wikitext2-test-rows", "seqlen": 8}).evaluate(loaded, progress=False)
    assert row.details["dataset"] == "wikitext2-test-rows" and "wikitext-2-raw-v1" in row.details["dataset_source"]


def test_a_hub_snapshot_reads_only_its_sources_files(tmp_path):
    """A snapshot folder holds every file fetched at that revision (train too): a split reads its own."""
    for split in ("test", "train"):
        (tmp_path / "wikitext-2-raw-v1").mkdir(exist_ok=True)
        (tmp_path / "wikitext-2-raw-v1" / f"{split}-00000-of-00001.parquet").write_text("")
    src = Source("hub", "Salesforce/wikitext", "parquet-rows", revision="x", allow_patterns=("wikitext-2-raw-v1/test-*",))
    assert [p.name for p in _files(Resolved("wikitext2-test-rows", src, tmp_path, "x"))] == ["test-00000-of-00001.parquet"]
