"""Result bundles: export → import round trip, de-duplication, and rejection of bad bundles."""

from __future__ import annotations

import copy
import json

import pytest

from sparsebench.bundles import BundleError, content_hash, dumps, export_bundle, import_bundles
from sparsebench.cli import main
from sparsebench.items import ItemScores
from sparsebench.store import Store
from sparsebench.testing import synthetic_run, synthetic_timing


@pytest.fixture
def filled(store):
    """A store with three runs (one with end-to-end timings) and two standalone kernel timings."""
    store.write_run(synthetic_run("dense", "tiny", 20.0, sparsity=0.0))
    store.write_run(synthetic_run("magnitude", "tiny", 25.0, params={"alpha": 1.5}))
    store.write_run(synthetic_run("random", "tiny", 90.0, items=ItemScores.of(["w0", "w1"], [40.0, 36.0], [12, 12], "perplexity"), kernels=(("csr", "ok", 1.3, None), ("cusparselt", "unsupported", None, "needs CUDA"))))
    store.write_timings([synthetic_timing("csr", "ok", 1.8, sparsity=0.7), synthetic_timing("bsr", "unsupported", None, "unstructured")])
    return store


def _counts(store: Store) -> tuple[int, int, int]:
    return len(store.runs()), len(store.metrics()), len(store.timings())


def _write(tmp_path, bundle, name="b.json") -> object:
    path = tmp_path / name
    path.write_text(dumps(bundle) if isinstance(bundle, dict) else bundle)
    return path


def test_round_trip_and_dedup(filled, tmp_path):
    bundle = export_bundle(filled, kernel_timings=True)
    assert bundle["schema_version"] == 3 and bundle["content_hash"] == content_hash(bundle)
    assert len(bundle["runs"]) == 3 and len(bundle["timings"]) == 2
    path = _write(tmp_path, bundle)
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    report = import_bundles(target, [path])
    assert (report.runs_imported, report.runs_skipped, report.timings_imported) == (3, 0, 2)
    assert _counts(target) == _counts(filled) == (3, 3, 4)
    # the imported data is the exported data
    again = export_bundle(target, kernel_timings=True)
    strip = lambda b: {k: v for k, v in b.items() if k not in ("exported_at", "content_hash")}  # noqa: E731
    assert strip(again) == strip(bundle)
    # importing twice stores nothing new
    report = import_bundles(target, [path])
    assert (report.runs_imported, report.runs_skipped, report.timings_imported, report.timings_skipped) == (0, 3, 0, 2)
    assert _counts(target) == (3, 3, 4)


def test_same_run_in_two_bundles_is_imported_once(filled, tmp_path):
    a = _write(tmp_path, export_bundle(filled, method="magnitude"), "a.json")
    b = _write(tmp_path, export_bundle(filled), "b.json")
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    report = import_bundles(target, [a, b])
    assert (report.runs_imported, report.runs_skipped) == (3, 1)
    assert sorted(target.runs()["method"]) == ["dense", "magnitude", "random"]


def test_dry_run_stores_nothing(filled, tmp_path):
    path = _write(tmp_path, export_bundle(filled))
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    report = import_bundles(target, [path], dry_run=True)
    assert report.runs_imported == 3 and _counts(target) == (0, 0, 0)


def _rehash(b):
    b["content_hash"] = content_hash(b)
    return b


def _edit(fn, rehash=True):
    def make(bundle):
        b = copy.deepcopy(bundle)
        fn(b)
        return _rehash(b) if rehash else b
    return make


BAD = {
    # malformed
    "not json": (lambda b: "{not json", "not valid JSON"),
    "truncated": (lambda b: dumps(b)[:200], "not valid JSON"),
    "top-level list": (lambda b: "[]", "JSON object"),
    "string sparsity": (_edit(lambda b: b["runs"][0].update(sparsity="0.5")), "must be a finite number"),
    "missing field": (_edit(lambda b: b["runs"][0].pop("model")), "missing field 'model'"),
    "sparsity out of range": (_edit(lambda b: b["runs"][1].update(achieved_sparsity=1.5)), "must be in [0, 1]"),
    "negative time": (_edit(lambda b: b["runs"][1].update(prune_time_s=-1.0)), "must be >= 0"),
    "bool as number": (_edit(lambda b: b["runs"][1]["metrics"][0].update(value=True)), "finite number"),
    "NaN": (lambda b: dumps(b).replace('"value": 25.0', '"value": NaN'), "not valid JSON"),
    "bad pattern": (_edit(lambda b: b["runs"][1].update(pattern="5:4")), "not a sparsity pattern"),
    "unknown status": (_edit(lambda b: b["runs"][2]["timings"][0].update(status="fast")), "must be one of"),
    "unsupported with a speedup": (_edit(lambda b: b["runs"][2]["timings"][1].update(speedup=9.0)), "must not carry a time"),
    "newer schema": (_edit(lambda b: b.update(schema_version=4)), "schema version 4"),
    "items shorter than n": (_edit(lambda b: b["runs"][2]["metrics"][0]["items"]["tokens"].__setitem__(0, 11)), "n is 24, but the items hold 23"),
    "item dropped": (_edit(lambda b: [b["runs"][2]["metrics"][0]["items"][k].pop() for k in ("ids", "scores", "tokens")]), "n is 24"),
    "items lengths differ": (_edit(lambda b: b["runs"][2]["metrics"][0]["items"]["ids"].append("w2")), "one score per id"),
    "duplicate item id": (_edit(lambda b: b["runs"][2]["metrics"][0]["items"]["ids"].__setitem__(1, "w0")), "ids must be unique"),
    "item score edited": (_edit(lambda b: b["runs"][2]["metrics"][0]["items"]["scores"].__setitem__(0, 10.0)), "is not the exp(total NLL"),
    "interval partly removed": (_edit(lambda b: b["runs"][2]["metrics"][0].update(ci_high=None)), "an interval needs all of"),
    "interval without items": (_edit(lambda b: b["runs"][2]["metrics"][0].update(items=None)), "interval exactly when"),
    "zero resamples": (_edit(lambda b: b["runs"][2]["metrics"][0].update(ci_resamples=0)), "must be > 0"),
    "items not an object": (_edit(lambda b: b["runs"][2]["metrics"][0].update(items=[1, 2])), "items are {aggregate"),
    "older schema": (_edit(lambda b: b.update(schema_version=1)), "schema version 1"),
    "wrong format": (_edit(lambda b: b.update(format="other")), "not a sparsebench results bundle"),
    "runs not a list": (_edit(lambda b: b.update(runs={})), "must be lists"),
    "duplicate run": (_edit(lambda b: b["runs"].append(copy.deepcopy(b["runs"][0]))), "appears twice"),
    # tampered
    "value edited": (_edit(lambda b: b["runs"][1]["metrics"][0].update(value=1.0), rehash=False), "content hash mismatch"),
    "hash removed": (_edit(lambda b: b.pop("content_hash"), rehash=False), "missing content_hash"),
    "column edited and rehashed": (_edit(lambda b: b["runs"][1].update(sparsity=0.6, achieved_sparsity=0.6)), "sparsity disagrees with spec.identity"),
    "identity edited and rehashed": (_edit(lambda b: b["runs"][1]["spec"]["identity"].update(seed=1)), "spec_hash does not match"),
    "method source edited": (_edit(lambda b: b["runs"][1].update(method_source="0" * 64)), "method_source disagrees"),
    "negative seed": (_edit(lambda b: (b["runs"][1].update(seed=-1), b["runs"][1]["spec"]["identity"].update(seed=-1))), "must be >= 0"),
    "NaN in a stored param": (lambda b: dumps(b).replace('"alpha": 1.5', '"alpha": NaN'), "not valid JSON"),
    "duplicate key": (lambda b: dumps(b).replace('"format": "sparsebench-results"', '"format": "sparsebench-results", "format": "x"'), "duplicate key"),
    # hostile
    "script in method name": (_edit(lambda b: b["runs"][1].update(method="<script>alert(1)</script>")), "not a valid name"),
    "html in model name": (_edit(lambda b: b["runs"][1].update(model='x"><img src=x onerror=alert(1)>')), "not a valid name"),
    "row id injection": (_edit(lambda b: b["runs"][1].update(id=1)), "unknown field 'id'"),
    "run_id injection": (_edit(lambda b: b["runs"][1]["metrics"][0].update(run_id=1)), "unknown field 'run_id'"),
    "extra top-level key": (_edit(lambda b: b.update(sql="DROP TABLE runs")), "unknown top-level field"),
    "control characters": (_edit(lambda b: b["runs"][1].update(hardware="cpu\x1b[2J")), "control characters"),
    "overlong string": (_edit(lambda b: b["runs"][1].update(hardware="x" * 300)), "longer than 256"),
    "deep nesting in params": (_edit(lambda b: b["runs"][1]["provenance"].update(x=json.loads("[" * 40 + "]" * 40))), "nested deeper"),
    "nesting bomb": (lambda b: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "huge integer": (_edit(lambda b: b["runs"][1].update(seed=10**30)), "must be an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bundles_rejected_and_nothing_imported(case, filled, tmp_path):
    make, message = BAD[case]
    bad = make(export_bundle(filled, kernel_timings=True))
    good = _write(tmp_path, export_bundle(filled, kernel_timings=True), "good.json")
    path = _write(tmp_path, bad, "bad.json")
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    with pytest.raises(BundleError, match=None) as err:
        import_bundles(target, [good, path])  # the good bundle must not be imported either
    assert message in str(err.value) and "\n" not in str(err.value)
    assert _counts(target) == (0, 0, 0)


def test_export_refuses_what_import_would_reject(store):
    store.write_run(synthetic_run("<b>x</b>", "tiny", 1.0))
    with pytest.raises(BundleError, match="not a valid name"):
        export_bundle(store)


def test_oversized_rejected_before_reading(filled, tmp_path):
    path = _write(tmp_path, export_bundle(filled))
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    with pytest.raises(BundleError, match="over the 1,000-byte limit"):
        import_bundles(target, [path], max_bytes=1000)
    assert _counts(target) == (0, 0, 0)


def test_cli_export_import(filled, tmp_path, capsys):
    out = tmp_path / "sub" / "bundle.json"
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--db", filled.url, "-o", str(out), "-m", "magnitude"])
    assert exit_.value.code == 0 and json.loads(out.read_text())["runs"][0]["method"] == "magnitude"
    target = f"sqlite:///{tmp_path / 'target.db'}"
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--db", target, str(out)])
    assert exit_.value.code == 0 and "imported 1 runs" in capsys.readouterr().out
    out.write_text(out.read_text().replace('"magnitude"', '"magnitudf"'))
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--db", target, str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and "content hash mismatch" in err and err.count("\n") == 1


def test_import_reads_every_bundle_under_a_folder(filled, tmp_path, capsys):
    """`sparsebench import results/`: *.json files at any depth, other files ignored, one transaction."""
    bundle = export_bundle(filled, kernel_timings=True)
    root = tmp_path / "results"
    (root / "grids").mkdir(parents=True)
    (root / "grids" / "grid.toml").write_text("models = []\n")  # not a bundle
    (root / "submissions" / "2026").mkdir(parents=True)
    _write(root, bundle, "published.json")
    _write(root / "submissions" / "2026", bundle, "again.json")
    db = tmp_path / "index.db"
    with pytest.raises(SystemExit) as exc:
        main(["import", "--db", f"sqlite:///{db}", str(root)])
    assert exc.value.code == 0
    assert "imported 3 runs (3 already stored) and 2 standalone timings (2 already stored) from 2 bundle(s)" in capsys.readouterr().out
    assert _counts(Store(f"sqlite:///{db}")) == _counts(filled)
    _write(root / "submissions", "{not json", "broken.json")  # one bad bundle anywhere rejects the whole folder
    with pytest.raises(SystemExit) as exc:
        main(["import", "--db", f"sqlite:///{tmp_path / 'other.db'}", str(root)])
    assert exc.value.code == 2 and "broken.json" in capsys.readouterr().err
    assert not (tmp_path / "other.db").exists()
