"""Published results: grids with per-method axes, `sweep --publish`, and the committed grids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparsebench.bundles import read_bundle
from sparsebench.cli import main
from sparsebench.errors import InvalidSpecError
from sparsebench.grid import load_grid, parse_grid
from sparsebench.publish import bundle_path, published_hashes
from sparsebench.store import Store
from sparsebench.sweep import expand

REPO = Path(__file__).resolve().parents[1]
GRIDS = sorted((REPO / "results" / "grids").glob("*.toml"))


def test_a_method_entry_with_its_own_axes_replaces_the_grids_for_that_method_only(tiny_model_dirs):
    grid = parse_grid({"models": [str(tiny_model_dirs["llama"])], "suites": ["unit"], "sparsities": [0.5, 0.7],
                       "patterns": ["unstructured", "2:4"],
                       "methods": ["magnitude", {"name": "shortgpt", "patterns": ["depth"], "sparsities": [0.25], "kernels": ["shrunk"]}]})
    got = sorted((j.plan.spec.method, str(j.plan.spec.pattern), j.plan.sparsity, j.plan.spec.kernels) for j in expand(grid))
    assert got == [("magnitude", "2:4", 0.5, ()), ("magnitude", "unstructured", 0.5, ()), ("magnitude", "unstructured", 0.7, ()),
                   ("shortgpt", "depth", 0.25, ("shrunk",))]


@pytest.mark.parametrize("entry, message", [
    ({"name": "shortgpt", "pattern": ["depth"]}, "a grid method is"),
    ({"name": "shortgpt", "sparsities": ["0.2"]}, "wrong type"),
    ({"name": "shortgpt", "params": [1]}, "a grid method is"),
])
def test_bad_method_axes_are_one_line_errors(entry, message):
    with pytest.raises(InvalidSpecError, match=message):
        parse_grid({"models": ["llama"], "methods": [entry]})


def _sweep(grid: Path, db: Path, publish: Path, *extra: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(grid), "--db", f"sqlite:///{db}", "--publish", str(publish), "--no-progress", *extra])
    return exc.value.code


def test_sweep_publish_writes_one_bundle_per_run_and_a_fresh_index_resumes_from_them(tiny_model_dirs, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["dense", "magnitude"]\nsuites = ["unit"]\n')
    published = tmp_path / "runs"
    assert _sweep(grid, tmp_path / "a.db", published) == 0
    store = Store(f"sqlite:///{tmp_path / 'a.db'}", create=False)
    runs = store.runs()
    files = sorted(published.rglob("*.json"))
    assert len(files) == len(runs) == 2
    for _, run in runs.iterrows():
        path = bundle_path(published, run["model"], run["spec_hash"])
        bundle, checked = read_bundle(path)  # a valid bundle, as import checks it
        assert [r.spec_hash for r in checked.runs] == [run["spec_hash"]]
    assert published_hashes(published) == set(runs["spec_hash"])
    mtimes = {f: os.stat(f).st_mtime_ns for f in files}
    capsys.readouterr()

    # a fresh clone: no database, only the published files; nothing runs again, nothing is rewritten
    assert _sweep(grid, tmp_path / "b.db", published, "--dry-run") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["published", "published"]
    assert _sweep(grid, tmp_path / "b.db", published) == 0
    err = capsys.readouterr().err
    assert "2 runs imported" in err and "2 already stored, 0 to run" in err
    assert {f: os.stat(f).st_mtime_ns for f in sorted(published.rglob("*.json"))} == mtimes
    fresh = Store(f"sqlite:///{tmp_path / 'b.db'}", create=False)
    assert sorted(fresh.runs()["spec_hash"]) == sorted(runs["spec_hash"])


def test_a_stored_run_without_its_bundle_is_published_by_the_next_sweep_without_running_again(tiny_model_dirs, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["dense", "magnitude"]\nsuites = ["unit"]\n')
    published = tmp_path / "runs"
    assert _sweep(grid, tmp_path / "a.db", published) == 0
    lost = sorted(published.rglob("*.json"))[0]
    before = lost.read_text()
    lost.unlink()  # e.g. the sweep was stopped between storing the run and writing its file
    capsys.readouterr()
    assert _sweep(grid, tmp_path / "a.db", published) == 0
    err = capsys.readouterr().err
    assert "published 1 stored runs of the grid that had no bundle" in err and "2 already stored, 0 to run" in err
    again = json.loads(lost.read_text())
    assert again["runs"] == json.loads(before)["runs"]  # the same run, not a new measurement


def test_a_malformed_published_bundle_stops_the_sweep_before_anything_runs(tiny_model_dirs, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["dense"]\nsuites = ["unit"]\n')
    published = tmp_path / "runs"
    (published / "x").mkdir(parents=True)
    (published / "x" / "bad.json").write_text(json.dumps({"format": "sparsebench-results"}))
    assert _sweep(grid, tmp_path / "a.db", published) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "bad.json" in err[-1]
    assert Store(f"sqlite:///{tmp_path / 'a.db'}").runs().empty


@pytest.mark.parametrize("grid", GRIDS, ids=[g.stem for g in GRIDS])
def test_the_published_grids_expand_and_validate(grid):
    planned = expand(load_grid(grid))
    assert planned and len({pj.job.key for pj in planned}) == len(planned)
