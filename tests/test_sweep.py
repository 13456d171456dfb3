"""Sweeps: the grid schema, local and Ray executors, failures, and kill-and-resume."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsebench.cli import main
from sparsebench.errors import InvalidSpecError
from sparsebench.executors import LocalExecutor, RayExecutor
from sparsebench.grid import load_grid, parse_grid
from sparsebench.store import Store
from sparsebench.sweep import expand, sweep

pytestmark = pytest.mark.usefixtures("tiny_lambada")


def _grid(model, **kw):
    return parse_grid({"models": [str(model)], "suites": ["unit"], **kw})


def _records(store: Store) -> dict[tuple[str, str], float]:
    df = store.results()
    return {(h, m): v for h, m, v in zip(df["spec_hash"], df["metric"], df["value"])}


# -- the grid ------------------------------------------------------------------------------
def test_grid_expands_to_distinct_validated_specs(tiny_model_dirs):
    grid = _grid(tiny_model_dirs["llama"], methods=["magnitude", "dense", {"name": "random", "params": {}}],
                 sparsities=[0.3, 0.6], patterns=["unstructured", "2:4"], seeds=[0, 1])
    jobs = expand(grid)
    # per seed: magnitude and random 2 sparsities x unstructured + one 2:4; dense once
    assert len(jobs) == 2 * (2 * (2 + 1) + 1)
    assert len({j.job.key for j in jobs}) == len(jobs)
    dense = [j for j in jobs if j.plan.spec.method == "dense"]
    assert {j.plan.sparsity for j in dense} == {0.0}
    nm = [j for j in jobs if str(j.plan.spec.pattern) == "2:4"]
    assert {j.plan.sparsity for j in nm} == {0.5}


def test_grid_file_schema_and_relative_model_folders(tiny_model_dirs, tmp_path):
    shutil.copytree(tiny_model_dirs["gpt2"], tmp_path / "models" / "tiny")
    (tmp_path / "grid.toml").write_text(
        'models = ["models/tiny"]\nmethods = ["magnitude"]\nsparsities = [0.5]\nsuites = ["unit"]\n'
        "kernels = [\"\"]\n[resources]\ncpus = 2\nmemory_gb = 1.5\n"
    )
    grid = load_grid(tmp_path / "grid.toml")
    assert grid.models == (str((tmp_path / "models" / "tiny").resolve()),)
    assert grid.resources.cpus == 2 and grid.resources.memory_gb == 1.5 and grid.kernels == ((),)
    assert len(expand(grid)) == 1


@pytest.mark.parametrize("bad, message", [
    ({"methods": ["magnitude"]}, "non-empty list 'models'"),
    ({"models": ["llama"], "methods": ["magnitude"], "sparsity": [0.5]}, "unknown key"),
    ({"models": ["llama"], "methods": [{"name": "magnitude", "alpha": 1}]}, "a grid method is"),
    ({"models": ["llama"], "methods": ["magnitude"], "seeds": ["0"]}, "wrong type"),
    ({"models": ["llama"], "methods": ["magnitude"], "seeds": [0, 0]}, "twice"),
    ({"models": ["llama"], "methods": ["magnitude"], "resources": {"gpu": 1}}, "unknown key"),
])
def test_bad_grids_are_one_line_errors(bad, message):
    with pytest.raises(InvalidSpecError, match=message):
        parse_grid(bad)


def test_invalid_grid_points_are_caught_before_anything_runs(tiny_model_dirs):
    with pytest.raises(InvalidSpecError, match="grid point magnitude .*sparsity"):
        expand(_grid(tiny_model_dirs["llama"], methods=["magnitude"], sparsities=[1.5]))
    with pytest.raises(InvalidSpecError, match="no parameter"):
        expand(_grid(tiny_model_dirs["llama"], methods=[{"name": "magnitude", "params": {"alpha": [1, 2]}}]))


def test_dry_run_lists_every_spec(tiny_model_dirs, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["magnitude", "random"]\nsuites = ["unit"]\n')
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(grid), "--db", f"sqlite:///{tmp_path / 'r.db'}", "--dry-run"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.startswith("pending") for line in out)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(tmp_path / "missing.toml")])
    assert exc.value.code == 2 and "cannot read grid" in capsys.readouterr().err


# -- running -------------------------------------------------------------------------------
def test_a_failing_spec_is_recorded_and_does_not_stop_the_sweep(tiny_model_dirs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dirs["opt"], broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    grid = parse_grid({"models": [str(broken), str(tiny_model_dirs["opt"])], "methods": ["magnitude"], "suites": ["unit"]})
    summary = sweep(grid, store, LocalExecutor(workers=1), progress=False)
    assert len(summary.stored) == 1 and len(summary.failed) == 1
    runs = store.runs(status=None)
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["model"].endswith("broken") and "SafetensorError" in failed["error"]
    assert store.results()["model"].tolist() == [runs[runs["status"] == "completed"].iloc[0]["model"]]
    again = sweep(grid, store, LocalExecutor(workers=1), retry_failed=False, progress=False)
    assert again.already == 2 and not again.stored and not again.failed


# The acceptance grid: 2 methods x 3 sparsities x 2 patterns on the tiny model.
ACCEPTANCE = dict(methods=["magnitude", "random"], sparsities=[0.3, 0.5, 0.7], patterns=["unstructured", "block4x4"])


def test_local_and_ray_executors_store_identical_records(tiny_model_dirs, tmp_path):
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install 'sparsebench[ray]'")
    grid = _grid(tiny_model_dirs["llama"], **ACCEPTANCE)
    local, ray = Store(f"sqlite:///{tmp_path / 'local.db'}"), Store(f"sqlite:///{tmp_path / 'ray.db'}")
    a = sweep(grid, local, LocalExecutor(workers=2), progress=False)
    b = sweep(grid, ray, RayExecutor(workers=2), progress=False)
    assert len(a.stored) == len(b.stored) == 12 and not a.failed and not b.failed
    assert _records(local) == _records(ray) and len(_records(local)) == 12
    cols = ["spec_hash", "method", "pattern", "sparsity", "achieved_sparsity", "seed", "suite_version", "status"]
    assert local.runs()[cols].sort_values("spec_hash").values.tolist() == ray.runs()[cols].sort_values("spec_hash").values.tolist()


class KillOneWorker:
    """Echo callback: after the ``after``-th finished spec, SIGKILL a worker that is busy with
    another spec (not the one that just reported, which waits for its next job)."""

    def __init__(self, after: int):
        self.after, self.done, self.killed = after, 0, None

    def __call__(self, line: str) -> None:
        if not line.startswith("ok "):
            return
        self.done += 1
        if self.done == self.after:
            reporter = int(line.rsplit(":", 1)[1].rstrip(")"))
            victim = next(p for p in multiprocessing.active_children() if p.pid != reporter)
            os.kill(victim.pid, signal.SIGKILL)
            self.killed = victim.pid


def test_kill_a_worker_midway_then_resume_gives_exactly_the_grid(tiny_model_dirs, tmp_path):
    """>= 40 specs on 4 workers; one worker is killed midway; a resume completes exactly the grid."""
    grid = parse_grid({
        "models": [str(tiny_model_dirs["llama"]), str(tiny_model_dirs["gpt2"])], "suites": ["unit"],
        "methods": ["magnitude", "random", "dense"], "sparsities": [0.25, 0.5, 0.75],
        "patterns": ["unstructured", "unstructured-global", "block4x4", "2:4"],
    })
    expected = {pj.job.key for pj in expand(grid)}
    assert len(expected) == 42
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    killer = KillOneWorker(after=8)
    first = sweep(grid, store, LocalExecutor(workers=4, max_attempts=1), echo=killer, progress=False)
    assert killer.killed is not None
    # The killed worker's spec is recorded as failed (unless, rarely, the worker had just
    # finished a spec and was idle: then nothing was lost); every other spec is stored once.
    assert len(first.failed) <= 1 and len(first.stored) + len(first.failed) == 42
    failed = store.runs(status="failed")
    assert len(failed) == len(first.failed)
    assert all("worker process died" in e for e in failed["error"])

    resumed = sweep(grid, store, LocalExecutor(workers=4), echo=lambda s: None, progress=False)
    assert resumed.already == 42 - len(first.failed) and len(resumed.stored) == len(first.failed) and not resumed.failed
    runs = store.runs(status=None)
    assert set(runs["spec_hash"]) == expected and runs["spec_hash"].is_unique and len(runs) == 42
    assert (runs["status"] == "completed").all() and runs["error"].isna().all()
    assert store.metrics().groupby("run_id").size().eq(1).all() and len(store.metrics()) == 42


def test_a_killed_sweep_resumes_where_it_stopped(tiny_model_dirs, tmp_path):
    """SIGKILL the whole `sparsebench sweep` (driver and workers) midway; the same command
    again keeps what was stored and runs only the rest."""
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["magnitude", "random"]\n'
                    'sparsities = [0.3, 0.5, 0.7]\nsuites = ["unit"]\n')
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    cmd = [sys.executable, "-c", "from sparsebench.cli import main; main()", "sweep", str(grid), "--db", url, "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(store.runs()) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = store.runs()
    assert 2 <= len(before) < 6 and (before["status"] == "completed").all()

    summary = sweep(load_grid(grid), store, LocalExecutor(workers=2), echo=lambda s: None, progress=False)
    assert summary.already == len(before) and len(summary.stored) == 6 - len(before)
    after = store.runs()
    assert len(after) == 6 and after["spec_hash"].is_unique
    assert set(before["id"]) <= set(after["id"])  # what was stored before the kill is kept as it was


# -- examples that must run as printed -------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def _readme_grid() -> str:
    """The grid example in the README's "Sweeps" section (the first ```toml block there)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Sweeps"):]
    return section.split("```toml\n", 1)[1].split("```", 1)[0]


def _help_grid(capsys) -> str:
    """The grid example at the end of `sparsebench sweep --help`."""
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    lines = capsys.readouterr().out.split("A grid file", 1)[1].splitlines()[1:]
    return "\n".join(line.strip() for line in lines if line.strip())


@pytest.mark.parametrize("source", ["readme", "help"])
def test_the_documented_grid_passes_a_dry_run_and_creates_no_database(source, tmp_path, capsys):
    text = _readme_grid() if source == "readme" else _help_grid(capsys)
    assert "params" in text  # the example shows a parameter axis
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    db = tmp_path / "sub" / "r.db"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(grid), "--db", f"sqlite:///{db}", "--dry-run"])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    assert len(out.splitlines()) > 4 and all(line.startswith("pending") for line in out.splitlines())
    assert not db.exists() and not db.parent.exists()
    assert load_grid(grid).methods[-1].params  # the parameter axis expanded


def test_negative_seeds_are_rejected():
    with pytest.raises(InvalidSpecError, match="seeds' must be integers >= 0"):
        parse_grid({"models": ["llama"], "methods": ["magnitude"], "seeds": [0, -1]})


def test_threads_per_worker_default_to_the_grid_cpus(tiny_model_dirs):
    grid = _grid(tiny_model_dirs["llama"], methods=["magnitude"], resources={"cpus": 3})
    (pj,) = expand(grid)
    assert pj.job.spec.threads == 3
    (pj,) = expand(dataclasses.replace(grid, threads=1))
    assert pj.job.spec.threads == 1 and pj.job.key == expand(grid)[0].job.key  # threads are not in the hash


def test_a_worker_routes_other_libraries_warnings_like_the_cli(tiny_model_dirs, capfd):
    """lm-eval's and transformers' warnings stay out of a sweep's output, as they do for `sparsebench run`."""
    import logging

    from sparsebench.executors import execute

    (pj,) = expand(_grid(tiny_model_dirs["llama"], methods=["magnitude"]))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert execute(pj.job).ok
        capfd.readouterr()
        logging.getLogger("lm_eval.evaluator").warning("third-party chatter")
        logging.getLogger("sparsebench.runner").warning("our own warning")
        err = capfd.readouterr().err
        assert "third-party chatter" not in err and "our own warning" in err
    finally:
        root.handlers[:], root.level = saved
