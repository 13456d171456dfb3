"""Storage: schema version, refusal of foreign or incompatible databases, atomic writes, typed records."""

from __future__ import annotations

import dataclasses
import math
import sqlite3

import pytest

from sparsebench.errors import InvalidSpecError, StoreError
from sparsebench.record import MetricRecord, RecordError
from sparsebench.store import SCHEMA_VERSION, DuplicateRunError, Store
from sparsebench.testing import synthetic_run


def test_write_and_read_back(store):
    record = synthetic_run("magnitude", "tiny", 12.5)
    run_id = store.write_run(record)
    df = store.results()
    assert df.loc[0, "id"] == run_id and df.loc[0, "value"] == 12.5
    assert store.has_run(record.spec_hash) is not None and store.has_run("nope") is None
    row = store.runs().iloc[0]
    assert row["spec"]["identity"] == record.identity.payload() and row["method_source"] == record.identity.method_source


def test_failed_write_leaves_nothing(store, monkeypatch):
    import sparsebench.store as store_module

    def broken(record):
        row = store_module.Run(**record.columns())
        row.metrics = [store_module.MetricRow(**{**m.columns(), "value": None}) for m in record.metrics]  # NOT NULL violation
        return row

    monkeypatch.setattr(store_module, "run_row", broken)
    with pytest.raises(Exception):
        store.write_run(synthetic_run("magnitude", "tiny", 1.0))
    assert store.runs().empty and store.metrics().empty


def test_duplicate_spec_hash_is_refused_and_replace_works(store):
    store.write_run(synthetic_run("magnitude", "tiny", 12.5))
    with pytest.raises(DuplicateRunError):
        store.write_run(synthetic_run("magnitude", "tiny", 12.5))
    store.write_run(synthetic_run("magnitude", "tiny", 1.0), replace=True)
    df = store.results()
    assert len(df) == 1 and df.loc[0, "value"] == 1.0


@pytest.mark.parametrize("make, message", [
    (lambda: synthetic_run("magnitude", "tiny", math.nan), "value is not a finite number"),
    (lambda: synthetic_run("magnitude", "tiny", 1.0, params={"m": math.inf}), "parameter m is not a finite number"),
    (lambda: synthetic_run("magnitude", "tiny", 1.0, params={"m": [1.0, math.nan]}), "parameter m[1] is not a finite number"),
    (lambda: synthetic_run("magnitude", "tiny", 1.0, seed=-1), "seed must be an integer >= 0"),
    (lambda: synthetic_run("magnitude", "tiny", 1.0, sparsity=1.0), "sparsity must be in [0, 1)"),
])
def test_no_malformed_record_can_be_built(make, message):
    with pytest.raises((RecordError, InvalidSpecError)) as err:
        make()
    assert message in str(err.value)


def test_a_record_is_completed_xor_failed():
    record = synthetic_run("magnitude", "tiny", 1.0)
    with pytest.raises(RecordError, match="completed record carries measurements"):
        dataclasses.replace(record, error="boom")
    with pytest.raises(RecordError, match="finite"):
        MetricRecord("t", "1", "acc", 0.5, True, details={"ci": [0.1, math.inf]})


def test_write_failure_refuses_a_completed_record(store):
    with pytest.raises(StoreError, match="write_failure stores failed runs"):
        store.write_failure(synthetic_run("magnitude", "tiny", 1.0))


def test_not_a_database(tmp_path):
    p = tmp_path / "junk.db"
    p.write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use database"):
        Store(f"sqlite:///{p}")


def test_foreign_sqlite_database_is_refused(tmp_path):
    p = tmp_path / "other.db"
    with sqlite3.connect(p) as c:
        c.execute("create table customers (id integer)")
    with pytest.raises(StoreError, match="not a sparsebench database"):
        Store(f"sqlite:///{p}")


def test_incompatible_schema_version_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url)
    with sqlite3.connect(tmp_path / "old.db") as c:
        c.execute("update sparsebench_meta set value = ? where key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION - 1}, this sparsebench needs {SCHEMA_VERSION}"):
        Store(url)


def test_unwritable_location(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(StoreError, match="cannot create the database folder"):
        Store(f"sqlite:///{f / 'sub' / 'x.db'}")


def test_writers_create_missing_folders_readers_create_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'r.db'}"
    with pytest.raises(StoreError, match="no database at"):
        Store(url, create=False)
    assert Store.existing(url) is None and not (tmp_path / "a").exists()
    Store(url)
    assert (tmp_path / "a" / "b" / "r.db").is_file() and Store.existing(url) is not None
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert Store.existing(f"sqlite:///{empty}") is None
    with pytest.raises(StoreError, match="is empty"):
        Store(f"sqlite:///{empty}", create=False)
