"""Executors: run sweep jobs in worker processes and hand each outcome back as it arrives.

Workers never touch the database. A worker runs one spec and returns the finished record
(run columns, metric rows, timing rows) or the error; the sweep's one writer stores it.
That is the only design that also works on a Ray cluster whose nodes cannot reach the
SQLite file, and the only one that can record a spec whose worker was killed (a dead
worker cannot write its own failure).

- ``local``: one single-process pool per worker slot (spawn context), each slot pinned to
  one device. A killed worker breaks only its own slot, so the spec it was running is known
  exactly: it is retried on a fresh process, then recorded as failed. Workers die with the
  sweep process (on Linux, a parent-death signal): a killed sweep leaves no worker behind.
- ``ray``: each spec is one Ray task with its CPU / GPU / memory needs, on an existing
  cluster (``address``) or on a local one started for the sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import SparsebenchError
from .grid import Resources
from .record import RunRecord
from .spec import RunSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    key: str  # the spec hash the sweep expects this job to store
    spec: RunSpec
    resources: Resources = Resources()


@dataclass
class Outcome:
    """What a worker sends back: a finished record, or the error that stopped the spec."""

    key: str
    ok: bool
    record: RunRecord | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    worker: str = ""


class Listener(Protocol):
    def outcome(self, job: Job, outcome: Outcome) -> None: ...
    def retry(self, job: Job, reason: str) -> None: ...


class ResultCapture:
    """Stands in for the Store inside a worker: the runner's one write is kept, not stored."""

    def __init__(self) -> None:
        self.record: RunRecord | None = None

    def has_run(self, spec_hash: str, status: str | None = "completed") -> None:
        return None  # the sweep checked the database before submitting

    def write_run(self, record: RunRecord, replace: bool = False) -> None:
        self.record = record


def describe_error(exc: BaseException) -> str:
    """First line: what went wrong; then, for bugs (not user errors), the traceback."""
    head = str(exc) if isinstance(exc, SparsebenchError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SparsebenchError):
        return head
    return head + "\n" + "".join(traceback.format_exception(exc)[-8:])


def execute(job: Job) -> Outcome:
    """Run one spec in this (worker) process; every exception becomes a failed Outcome."""
    from transformers.utils import logging as hf_logging

    from . import logs
    from .runner import run

    logs.configure()  # the other libraries' chatter stays out of the sweep's output, as in `sparsebench run`
    hf_logging.disable_progress_bar()  # one line per finished spec is the sweep's progress
    where = f"{socket.gethostname()}:{os.getpid()}"
    capture, t0 = ResultCapture(), time.perf_counter()
    try:
        run(job.spec, capture, progress=False, echo=log.debug)  # type: ignore[arg-type]
    except Exception as exc:  # a failed spec is a result of the sweep, not the end of it
        return Outcome(job.key, False, error=describe_error(exc), elapsed_s=time.perf_counter() - t0, worker=where)
    return Outcome(job.key, True, capture.record, elapsed_s=time.perf_counter() - t0, worker=where)


class Executor(ABC):
    @abstractmethod
    def run(self, jobs: Sequence[Job], listener: Listener) -> None:
        """Run every job; call ``listener.outcome`` once per job, as each one finishes."""


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent (the sweep) dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("cannot set the parent-death signal: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _init_worker(visible: str | None, parent: int) -> None:
    """Worker initializer: die with the sweep process; see only this slot's GPU (as ``cuda:0``);
    give tqdm a thread lock. tqdm's default lock holds a named multiprocessing semaphore, which a
    worker stopped mid-spec (Ctrl-C, SIGTERM, a retry's kill) cannot release, so the resource
    tracker would print a "leaked semaphore" warning after the sweep's one-line message."""
    _die_with_parent(parent)
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible


class _Slot:
    """One worker process (a one-process pool) bound to one device."""

    def __init__(self, ctx: Any, visible: str | None):
        self.ctx, self.visible = ctx, visible
        self.start()

    def start(self) -> None:
        self.pool = ProcessPoolExecutor(1, mp_context=self.ctx, initializer=_init_worker, initargs=(self.visible, os.getpid()))
        self.pid: Future[int] = self.pool.submit(os.getpid)

    def submit(self, job: Job) -> Future[Outcome]:
        try:
            return self.pool.submit(execute, job)
        except BrokenProcessPool:  # the idle worker died: the job never started, so it costs no attempt
            self.stop(kill=True)
            self.start()
            return self.pool.submit(execute, job)

    def stop(self, kill: bool) -> None:
        """Shut the pool down; ``kill`` also ends a job still running (on an interrupt)."""
        self.pool.shutdown(wait=not kill, cancel_futures=True)
        if kill and self.pid.done() and self.pid.exception() is None:
            try:
                os.kill(self.pid.result(), signal.SIGTERM)
            except ProcessLookupError:
                pass


class LocalExecutor(Executor):
    """A process per worker on this machine; ``devices`` pins one GPU per worker."""

    def __init__(self, workers: int = 1, devices: Sequence[str] | None = None, max_attempts: int = 2):
        if workers < 1 or max_attempts < 1:
            raise SparsebenchError("--workers and --max-attempts must be at least 1")
        # CUDA_VISIBLE_DEVICES value per slot; None leaves the environment alone (CPU).
        self.visible: list[str | None] = [d.partition(":")[2] or "0" for d in devices] if devices else [None] * workers
        self.max_attempts = max_attempts

    def run(self, jobs: Sequence[Job], listener: Listener) -> None:
        ctx = multiprocessing.get_context("spawn")
        pending, attempts = deque(jobs), {j.key: 0 for j in jobs}
        slots = [_Slot(ctx, v) for v in self.visible[: max(1, len(jobs))]]
        running: dict[Future[Outcome], tuple[_Slot, Job]] = {}
        try:
            while pending or running:
                busy = {id(s) for s, _ in running.values()}
                for slot in slots:
                    if pending and id(slot) not in busy:
                        job = pending.popleft()
                        running[slot.submit(job)] = (slot, job)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    slot, job = running.pop(fut)
                    try:
                        listener.outcome(job, fut.result())
                        continue
                    except BrokenProcessPool:
                        reason = "its worker process died (killed, or out of memory)"
                    slot.stop(kill=True)
                    slot.start()
                    attempts[job.key] += 1
                    if attempts[job.key] < self.max_attempts:
                        listener.retry(job, reason)
                        pending.appendleft(job)
                    else:
                        listener.outcome(job, Outcome(job.key, False, error=f"{reason}; tried {attempts[job.key]} time(s)"))
        finally:
            for slot in slots:
                slot.stop(kill=bool(running))


class RayExecutor(Executor):
    """Each spec is a Ray task that asks for the spec's CPUs, GPUs and memory."""

    def __init__(self, address: str | None = None, workers: int | None = None, max_attempts: int = 2):
        self.address, self.workers, self.max_attempts = address, workers, max_attempts

    def _init(self, ray: Any, per_task_cpus: int) -> bool:
        if ray.is_initialized():
            return False
        common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
        # Ray puts the driver's working directory first on its workers' import path; started from a
        # sparsebench checkout, the source folder kernels/ would then hide the `kernels` package
        # that transformers imports. sparsebench is installed, so the workers need no source tree.
        with contextlib.chdir(tempfile.gettempdir()):
            if self.address:
                ray.init(address=self.address, **common)
            else:  # a private single-node cluster for this sweep, gone when it ends
                cpus = (self.workers or os.cpu_count() or 1) * per_task_cpus
                ray.init(address="local", num_cpus=cpus, object_store_memory=200 * 2**20, **common)
        return True

    def run(self, jobs: Sequence[Job], listener: Listener) -> None:
        try:
            import ray
            from ray.exceptions import RayError
        except ImportError:
            raise SparsebenchError("the ray executor needs Ray: pip install 'sparsebench[ray]'") from None
        if not jobs:
            return
        started = self._init(ray, max(j.resources.cpus for j in jobs))
        task = ray.remote(execute)
        refs: dict[Any, Job] = {}
        try:
            for job in jobs:
                r = job.resources
                opts: dict[str, Any] = dict(num_cpus=r.cpus, num_gpus=r.gpus, max_retries=self.max_attempts - 1, retry_exceptions=False)
                if r.memory_gb:
                    opts["memory"] = int(r.memory_gb * 2**30)
                refs[task.options(**opts).remote(job)] = job
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    job = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except RayError as exc:  # the worker or node died (after Ray's retries)
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        outcome = Outcome(job.key, False, error=f"ray task failed: {type(exc).__name__}: {first}")
                    listener.outcome(job, outcome)
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def make_executor(name: str, *, workers: int, devices: Sequence[str] | None, address: str | None, max_attempts: int) -> Executor:
    if name == "local":
        return LocalExecutor(workers, devices, max_attempts)
    if name == "ray":
        return RayExecutor(address, workers, max_attempts)
    raise SparsebenchError(f"unknown executor {name!r}; use 'local' or 'ray'")
