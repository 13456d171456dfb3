"""Storage: schema version, refusal of foreign or incompatible databases, atomic writes."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from sparsebench.errors import StoreError
from sparsebench.store import SCHEMA_VERSION, Store


def _run(spec_hash="h1", **kw):
    base = dict(
        spec_hash=spec_hash, status="completed", created_at=dt.datetime.now(dt.timezone.utc), method="magnitude",
        method_params={}, model="llama", model_revision="r", pattern="unstructured", sparsity=0.5, achieved_sparsity=0.5,
        suite="quick", suite_version="1", tasks={"names": ["wikitext2"]}, seed=0, calibration=None, device="cpu",
        hardware="cpu", prune_time_s=1.0, eval_time_s=2.0, peak_memory_mb=3.0, sparsebench_version="0", torch_version="t",
        transformers_version="t", git_sha="g", provenance={}, spec={},
    )
    base.update(kw)
    return base


METRIC = dict(task="wikitext2", task_version="1", metric="perplexity", value=12.5, stderr=None, higher_is_better=False, n=10, details={})


def test_write_and_read_back(store):
    run_id = store.write_run(_run(), [METRIC])
    df = store.results()
    assert df.loc[0, "id"] == run_id and df.loc[0, "value"] == 12.5
    assert store.has_run("h1") is not None and store.has_run("nope") is None


def test_failed_write_leaves_nothing(store):
    bad_metric = dict(METRIC, value=None)  # NOT NULL violation after the run row is added
    with pytest.raises(Exception):
        store.write_run(_run("h2"), [bad_metric])
    assert store.runs().empty and store.metrics().empty


def test_duplicate_spec_hash_is_refused_and_replace_works(store):
    store.write_run(_run("h3"), [METRIC])
    with pytest.raises(Exception):
        store.write_run(_run("h3"), [METRIC])
    store.write_run(_run("h3"), [dict(METRIC, value=1.0)], replace=True)
    df = store.results()
    assert len(df) == 1 and df.loc[0, "value"] == 1.0


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
        c.execute("update sparsebench_meta set value = ? where key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="schema version"):
        Store(url)


def test_unwritable_location(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(StoreError, match="cannot create the database folder"):
        Store(f"sqlite:///{f / 'sub' / 'x.db'}")
