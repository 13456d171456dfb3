"""Stopping a sweep: kill -9, SIGTERM and a worker stopped mid-spec leave no process behind and
nothing for the multiprocessing resource tracker to reap."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.usefixtures("tiny_lambada"),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")]


# -- a killed sweep leaves nothing running ---------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session id) of a live process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1]), int(fields[3])


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _proc_stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"  # a zombie has exited; only its parent's wait is missing


def _sweep_with_workers_up(tiny_model_dirs, tmp_path) -> tuple[subprocess.Popen, set[int]]:
    """A `sparsebench sweep` of 6 specs on 2 workers in its own session (stderr in tmp_path/err),
    once its two workers and the multiprocessing resource tracker are up; and those processes."""
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["magnitude", "random"]\n'
                    'sparsities = [0.3, 0.5, 0.7]\nsuites = ["unit"]\n')
    cmd = [sys.executable, "-c", "from sparsebench.cli import main; main()", "sweep", str(grid), "--db",
           f"sqlite:///{tmp_path / 'r.db'}", "--workers", "2", "--no-progress"]
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while len(_descendants(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    spawned = _descendants(proc.pid)
    assert len(spawned) >= 3 and proc.poll() is None, spawned
    return proc, spawned


def _left_behind(proc: subprocess.Popen, spawned: set[int]) -> tuple[set[int], set[int]]:
    """The spawned processes still alive 10 s after the sweep exited, and any other process of its session."""
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in spawned) and time.monotonic() < deadline:
        time.sleep(0.2)
    in_session = {int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _alive(int(e.name))
                  and (_proc_stat(int(e.name)) or ("", 0, 0))[2] == proc.pid}
    return {p for p in spawned if _alive(p)}, in_session


def test_kill_9_of_a_sweep_leaves_no_worker_or_helper_process(tiny_model_dirs, tmp_path):
    proc, spawned = _sweep_with_workers_up(tiny_model_dirs, tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _left_behind(proc, spawned) == (set(), set())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigterm_stops_a_sweep_like_ctrl_c(tiny_model_dirs, tmp_path):
    """SIGTERM (a scheduler's stop, `timeout`) to the sweep alone: its workers are stopped, one line
    says so, exit 143, and no multiprocessing object is left for the resource tracker to reap."""
    proc, spawned = _sweep_with_workers_up(tiny_model_dirs, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        err = (tmp_path / "err").read_text()
        assert code == 143, err
        assert "terminated (SIGTERM): every finished spec is stored" in err and "leaked" not in err, err
        assert _left_behind(proc, spawned) == (set(), set())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


_KILLED_AFTER_A_PROGRESS_BAR = """
import os, signal, sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from sparsebench.executors import _init_worker

def show_a_bar_then_die():
    from tqdm import tqdm
    for _ in tqdm(range(2)):
        pass
    os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    init = (_init_worker, (None, os.getpid())) if sys.argv[1] == "sweep-worker" else (None, ())
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init[0], initargs=init[1]) as pool:
        try:
            pool.submit(show_a_bar_then_die).result()
        except Exception:
            pass
"""


def test_a_worker_stopped_mid_spec_leaves_no_semaphore_to_reap(tmp_path):
    """A worker killed after a progress bar (model conversion shows one) holds no named semaphore:
    the resource tracker has nothing to warn about after the sweep's one-line message. A plain
    spawn worker, the control, does leak tqdm's multiprocessing lock, so the check can fail."""
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_AFTER_A_PROGRESS_BAR)

    def stderr_of(mode: str) -> str:
        return subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=120, check=False).stderr

    assert "leaked semaphore" in stderr_of("plain-worker")
    assert "leaked" not in stderr_of("sweep-worker")
