"""Sweeps: expand a grid, skip what is stored, run the rest on an executor, store as results arrive.

One writer: this process stores every outcome the moment its worker hands it back, each in
its own transaction. So an interrupted sweep (Ctrl-C, a killed driver, a lost node) keeps
every finished run, and running the same grid again resumes it: completed specs are
skipped by spec hash, failed ones are retried. The unique spec hash makes a second copy
impossible even when several sweeps share one database.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import InvalidSpecError, SparsebenchError
from .executors import Executor, Job, Outcome
from .grid import Grid
from .runner import Plan, plan, spec_hash_for
from .spec import params_dict
from .store import DuplicateRunError, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    plan: Plan
    model_revision: str

    def label(self) -> str:
        s = self.plan.spec
        extra = "".join(f" {k}={v}" for k, v in params_dict(self.plan.method.params).items())
        kernels = f" kernels={','.join(s.kernels)}" if s.kernels else ""
        return f"{s.method}{extra} {s.pattern} {self.plan.sparsity:.2f} {self.plan.model.name.rsplit('/', 1)[-1]} {s.suite} seed={s.seed}{kernels}"


def expand(grid: Grid) -> list[PlannedJob]:
    """Validate every point of the grid; one job per distinct spec hash, in grid order."""
    import torch

    from .models import resolve_weights
    from .provenance import hardware_label

    revisions: dict[str, str] = {}
    jobs: dict[str, PlannedJob] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(grid.resources.cpus)  # the hardware label a kernel-timing worker records
    try:
        hardware = hardware_label("cpu") if grid.device == "cpu" else None
        for spec in grid.specs():
            try:
                p = plan(spec)
            except SparsebenchError as exc:
                raise InvalidSpecError(f"grid point {spec.method} {spec.pattern} {spec.sparsity} {spec.model} {spec.suite}: {exc}") from None
            if p.model.name not in revisions:
                revisions[p.model.name] = resolve_weights(p.model).revision
            rev = revisions[p.model.name]
            key = spec_hash_for(p, rev, hardware)
            jobs.setdefault(key, PlannedJob(Job(key, p.spec, grid.resources), p, rev))
    finally:
        torch.set_num_threads(threads)
    return list(jobs.values())


def failure_record(pj: PlannedJob, error: str) -> dict:
    """The run columns of a spec that produced no result (so it shows up, with its error)."""
    from . import provenance

    p, s = pj.plan, pj.plan.spec
    prov = provenance.collect("cpu")
    return dict(
        spec_hash=pj.job.key, status="failed", created_at=dt.datetime.now(dt.timezone.utc), method=s.method,
        method_params=params_dict(p.method.params), model=p.model.name, model_revision=pj.model_revision,
        pattern=str(s.pattern), sparsity=p.sparsity, suite=p.suite.name, suite_version=p.suite.version,
        tasks={"names": list(p.tasks)}, seed=s.seed, device=s.device, hardware="unknown",
        sparsebench_version=prov["packages"]["sparsebench"], torch_version=prov["packages"]["torch"],
        transformers_version=prov["packages"]["transformers"], git_sha=prov["git_sha"], provenance=prov,
        spec={"method": s.method, "params": params_dict(p.method.params), "model": s.model, "pattern": str(s.pattern),
              "sparsity": p.sparsity, "suite": p.suite.name, "tasks": list(p.tasks), "seed": s.seed,
              "device": s.device, "kernels": list(s.kernels)},
        error=error,
    )


@dataclass
class Summary:
    total: int = 0
    already: int = 0  # stored before this sweep started
    stored: list[int] = field(default_factory=list)  # run ids written by this sweep
    duplicates: int = 0  # finished, but another writer had stored the spec first
    failed: list[str] = field(default_factory=list)  # spec hashes
    wall_s: float = 0.0

    def line(self) -> str:
        return (f"{len(self.stored)} stored, {len(self.failed)} failed, {self.already} already stored"
                + (f", {self.duplicates} stored meanwhile by another writer" if self.duplicates else "")
                + f" ({self.total} specs in the grid, {self.wall_s:.1f} s)")


class Writer:
    """The executors' listener: stores each outcome as it arrives and reports it."""

    def __init__(self, store: Store, jobs: dict[str, PlannedJob], summary: Summary, echo: Callable[[str], None], tick: Callable[[], None]):
        self.store, self.jobs, self.summary, self.echo, self.tick = store, jobs, summary, echo, tick

    def outcome(self, job: Job, outcome: Outcome) -> None:
        pj = self.jobs[job.key]
        if outcome.ok and outcome.record is not None:
            if outcome.record["spec_hash"] != job.key:
                log.warning("spec %s was stored as %s: the worker's hardware differs from this machine's", job.key[:12], outcome.record["spec_hash"][:12])
            try:
                run_id = self.store.write_run(outcome.record, outcome.metrics, outcome.timings)
            except DuplicateRunError as dup:
                self.summary.duplicates += 1
                self.echo(f"= {pj.label()}: already stored as run {dup.run_id} by another writer")
            else:
                self.summary.stored.append(run_id)
                values = ", ".join(f"{m['metric']}={m['value']:.4g}" for m in outcome.metrics[:2])
                self.echo(f"ok {pj.label()}: run {run_id}, {values} ({outcome.elapsed_s:.1f} s on {outcome.worker})")
        else:
            error = outcome.error or "no result"
            self.store.write_failure(failure_record(pj, error))
            self.summary.failed.append(job.key)
            self.echo(f"FAILED {pj.label()}: {error.splitlines()[0]}")
        self.tick()

    def retry(self, job: Job, reason: str) -> None:
        self.echo(f"retrying {self.jobs[job.key].label()}: {reason}")


def sweep(
    grid: Grid,
    store: Store,
    executor: Executor,
    *,
    retry_failed: bool = True,
    echo: Callable[[str], None] = log.info,
    progress: bool = True,
) -> Summary:
    """Run every spec of ``grid`` not yet stored; return what happened."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    planned = expand(grid)
    status = store.statuses(pj.job.key for pj in planned)
    skip = {"completed"} | (set() if retry_failed else {"failed"})
    todo = [pj for pj in planned if status.get(pj.job.key) not in skip]
    summary = Summary(total=len(planned), already=len(planned) - len(todo))
    echo(f"{len(planned)} specs in the grid: {summary.already} already stored, {len(todo)} to run")
    with tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress or not todo) as bar:
        writer = Writer(store, {pj.job.key: pj for pj in todo}, summary, lambda s: bar.write(s, file=sys.stderr) if progress else echo(s), lambda: bar.update(1))
        executor.run([pj.job for pj in todo], writer)
    summary.wall_s = time.perf_counter() - t0
    return summary
