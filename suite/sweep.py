"""Sweeps: expand a grid, skip what is stored, run the rest on an executor, store as results arrive.

One writer: this process stores every outcome the moment its worker hands it back, each in
its own transaction. So an interrupted sweep (Ctrl-C, a killed driver, a lost node) keeps
every finished run, and running the same grid again resumes it: completed specs are
skipped by spec hash, failed ones are retried. The unique spec hash makes a second copy
impossible even when several sweeps share one database.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import InvalidSpecError, SparsebenchError
from .executors import Executor, Job, Outcome
from .grid import Grid
from .record import RunRecord, build_record
from .runner import Plan, identity_of, plan
from .spec import Identity, spec_hash
from .store import DuplicateRunError, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    plan: Plan
    identity: Identity

    def label(self) -> str:
        s, i = self.plan.spec, self.identity
        extra = "".join(f" {k}={v}" for k, v in i.params.items())
        kernels = f" kernels={','.join(i.kernels)}" if i.kernels else ""
        return f"{s.method}{extra} {s.pattern} {self.plan.sparsity:.2f} {self.plan.model.name.rsplit('/', 1)[-1]} {i.suite.name} seed={s.seed}{kernels}"

    def failure(self, error: str) -> RunRecord:
        """The record of this spec when it produced no result (so it shows up, with its error)."""
        from . import provenance

        return build_record(self.identity, request=self.plan.spec.request(), device=self.plan.spec.device,
                            hardware=self.identity.hardware or "unknown", provenance=provenance.collect("cpu"), outcome=error)


def expand(grid: Grid) -> list[PlannedJob]:
    """Validate every point of the grid; one job per distinct spec hash, in grid order."""
    from .models import resolve_weights

    revisions: dict[str, str] = {}
    jobs: dict[str, PlannedJob] = {}
    for spec in grid.specs():
        try:
            p = plan(spec)
        except SparsebenchError as exc:
            raise InvalidSpecError(f"grid point {spec.method} {spec.pattern} {spec.sparsity} {spec.model} {spec.suite}: {exc}") from None
        if p.model.name not in revisions:
            revisions[p.model.name] = resolve_weights(p.model).revision
        identity = identity_of(p, revisions[p.model.name])
        key = spec_hash(identity)
        jobs.setdefault(key, PlannedJob(Job(key, p.spec, grid.resources), p, identity))
    return list(jobs.values())


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

    def __init__(self, store: Store, jobs: dict[str, PlannedJob], summary: Summary, echo: Callable[[str], None], tick: Callable[[], None],
                 on_stored: Callable[[int], str] | None = None):
        self.store, self.jobs, self.summary, self.echo, self.tick = store, jobs, summary, echo, tick
        self.on_stored = on_stored

    def outcome(self, job: Job, outcome: Outcome) -> None:
        pj = self.jobs[job.key]
        if outcome.ok and outcome.record is not None:
            if outcome.record.spec_hash != job.key:
                log.warning("spec %s was stored as %s: the worker's hardware or method source differs from this process's",
                            job.key[:12], outcome.record.spec_hash[:12])
            try:
                run_id = self.store.write_run(outcome.record)
            except DuplicateRunError as dup:
                self.summary.duplicates += 1
                self.echo(f"= {pj.label()}: already stored as run {dup.run_id} by another writer")
            else:
                self.summary.stored.append(run_id)
                values = ", ".join(f"{m.metric}={m.value:.4g}" for m in outcome.record.metrics[:2])
                self.echo(f"ok {pj.label()}: run {run_id}, {values} ({outcome.elapsed_s:.1f} s on {outcome.worker})")
                if self.on_stored is not None:
                    self.echo(f"   {self.on_stored(run_id)}")
        else:
            error = outcome.error or "no result"
            self.store.write_failure(pj.failure(error))
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
    on_stored: Callable[[int], str] | None = None,
) -> Summary:
    """Run every spec of ``grid`` not yet stored; return what happened. ``on_stored(run_id)`` is
    called after each run is stored (e.g. to publish it) and returns a line to print."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    planned = expand(grid)
    status = store.statuses(pj.job.key for pj in planned)
    skip = {"completed"} | (set() if retry_failed else {"failed"})
    todo = [pj for pj in planned if status.get(pj.job.key) not in skip]
    summary = Summary(total=len(planned), already=len(planned) - len(todo))
    echo(f"{len(planned)} specs in the grid: {summary.already} already stored, {len(todo)} to run")
    with tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress or not todo) as bar:
        writer = Writer(store, {pj.job.key: pj for pj in todo}, summary, lambda s: bar.write(s, file=sys.stderr) if progress else echo(s), lambda: bar.update(1),
                        on_stored)
        executor.run([pj.job for pj in todo], writer)
    summary.wall_s = time.perf_counter() - t0
    return summary
