"""The run record: what is stored for one run, completed or failed, built in one place.

:func:`build_record` is the only constructor the runner, the sweep and the test helpers use;
:class:`RunRecord` checks itself (finite numbers everywhere, sparsities in range, the status
consistent with what it carries), so nothing malformed reaches the database or a bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .confidence import Interval, bootstrap_interval
from .errors import SparsebenchError
from .items import ItemScores, ItemsError
from .spec import Identity, nonfinite_path, spec_hash

if TYPE_CHECKING:
    from .task import Metric

Status = Literal["completed", "failed"]


class RecordError(SparsebenchError):
    """A run record holds a value that cannot be stored (NaN, an out-of-range sparsity, ...)."""


def _check_finite(value: Any, where: str) -> None:
    if (path := nonfinite_path(value)) is not None:
        raise RecordError(f"{where}: {path} is not a finite number (NaN and infinity cannot be stored)")


INTERVAL_FIELDS = tuple(f.name for f in dataclasses.fields(Interval))  # stored as ci_low, ci_high, ci_level, ci_resamples, ci_seed


@dataclass(frozen=True)
class MetricRecord:
    """One stored metric row."""

    task: str
    task_version: str
    metric: str
    value: float
    higher_is_better: bool
    stderr: float | None = None
    n: int | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    items: ItemScores | None = None
    interval: Interval | None = None  # the bootstrap interval over the items (sparsebench.confidence)

    def __post_init__(self) -> None:
        where = f"metric {self.task}/{self.metric}"
        _check_finite({"value": self.value, "stderr": self.stderr, "details": dict(self.details),
                       "interval": dataclasses.asdict(self.interval) if self.interval else None}, where)
        if self.items is not None:
            try:
                self.items.check(self.value, self.n, where)
            except ItemsError as exc:
                raise RecordError(str(exc)) from None
        if (self.items is None) != (self.interval is None):
            raise RecordError(f"{where}: a metric carries an interval exactly when it carries items")
        iv = self.interval
        if iv is not None and not (iv.low <= iv.high and 0 < iv.level < 1 and iv.resamples > 0 and iv.seed >= 0):
            raise RecordError(f"{where}: the interval needs low <= high, a level in (0, 1), resamples > 0 and a seed >= 0")

    @classmethod
    def of(cls, m: Metric) -> MetricRecord:
        """The stored row of a task's metric, with the bootstrap interval of its items."""
        interval = bootstrap_interval(m.items) if m.items is not None else None
        return cls(m.task, m.task_version, m.name, float(m.value), bool(m.higher_is_better), m.stderr, m.n, dict(m.details),
                   m.items, interval)

    @classmethod
    def from_columns(cls, row: Mapping[str, Any]) -> MetricRecord:
        """From a stored metric row (items as their JSON payload, the interval as ``ci_*`` columns)."""
        row = dict(row)
        ci = {k: row.pop(f"ci_{k}", None) for k in INTERVAL_FIELDS}
        fields = {f.name for f in dataclasses.fields(cls)} - {"interval"}
        unknown = set(row) - fields
        if unknown:
            raise RecordError(f"metric row has unknown field(s) {sorted(unknown)}")
        where = f"metric {row.get('task')}/{row.get('metric')}"
        payload = row.get("items")
        try:
            items = ItemScores.from_payload(payload) if payload is not None else None
        except ItemsError as exc:
            raise RecordError(f"{where}: {exc}") from None
        if any(v is None for v in ci.values()) and any(v is not None for v in ci.values()):
            raise RecordError(f"{where}: an interval needs all of {', '.join('ci_' + k for k in INTERVAL_FIELDS)}")
        interval = Interval(**ci) if ci["low"] is not None else None
        return cls(**{**row, "items": items, "interval": interval})

    def columns(self) -> dict[str, Any]:
        cols = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "interval"}
        ci = {f"ci_{k}": getattr(self.interval, k) if self.interval else None for k in INTERVAL_FIELDS}
        return {**cols, **ci, "details": dict(self.details), "items": self.items.payload() if self.items is not None else None}


@dataclass(frozen=True)
class TimingRecord:
    """One stored latency row (a kernel at one shape, or a model end to end)."""

    scope: str  # "layer" | "prefill" | "decode"
    kernel: str
    status: str  # "ok" | "unsupported" | "failed"
    pattern: str
    sparsity: float
    dtype: str
    device: str
    hardware: str
    shape: Mapping[str, Any]
    reason: str | None = None
    median_s: float | None = None
    p10_s: float | None = None
    p90_s: float | None = None
    iterations: int | None = None
    dense_median_s: float | None = None
    speedup: float | None = None
    ideal_speedup: float | None = None
    max_abs_error: float | None = None
    threads: int | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_finite(self.columns(), f"timing {self.kernel}/{self.scope}")

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> TimingRecord:
        """From a timing row dict (as the latency and microbenchmark code produce them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(row) - names
        if unknown:
            raise RecordError(f"timing row has unknown field(s) {sorted(unknown)}")
        return cls(**row)

    def columns(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "shape": dict(self.shape), "details": dict(self.details)}


@dataclass(frozen=True)
class Measurements:
    """What only a completed run has."""

    achieved_sparsity: float
    prune_time_s: float
    eval_time_s: float
    peak_memory_mb: float
    calibration: str | None
    metrics: tuple[MetricRecord, ...]
    timings: tuple[TimingRecord, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """One run as stored: its identity (hence its spec hash), where and how it ran, and its outcome."""

    identity: Identity
    status: Status
    created_at: dt.datetime
    request: Mapping[str, Any]  # how it was asked for, beyond the identity (model argument, device, offload)
    device: str
    hardware: str
    provenance: Mapping[str, Any]
    sparsebench_version: str
    torch_version: str
    transformers_version: str
    git_sha: str
    measured: Measurements | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.status == "completed") != (self.measured is not None) or (self.status == "failed") != (self.error is not None):
            raise RecordError("a completed record carries measurements, a failed one an error (and nothing else)")
        if not 0.0 <= self.identity.sparsity < 1.0:
            raise RecordError(f"sparsity must be in [0, 1), got {self.identity.sparsity!r}")
        m = self.measured
        if m is not None:
            for name in ("achieved_sparsity", "prune_time_s", "eval_time_s", "peak_memory_mb"):
                value = getattr(m, name)
                if not math.isfinite(value) or value < 0:
                    raise RecordError(f"{name} must be a finite number >= 0, got {value!r}")
            if m.achieved_sparsity > 1.0:
                raise RecordError(f"achieved_sparsity must be in [0, 1], got {m.achieved_sparsity!r}")
        if self.identity.kernels and self.identity.hardware != self.hardware:
            raise RecordError(f"the kernel timings are of {self.identity.hardware!r}, but the run ran on {self.hardware!r}")
        _check_finite(dict(self.provenance), "provenance")
        _check_finite(dict(self.request), "request")

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.identity)

    @property
    def metrics(self) -> tuple[MetricRecord, ...]:
        return self.measured.metrics if self.measured else ()

    @property
    def timings(self) -> tuple[TimingRecord, ...]:
        return self.measured.timings if self.measured else ()

    def columns(self) -> dict[str, Any]:
        """The ``runs`` table columns of this record."""
        i, m = self.identity, self.measured
        return dict(
            spec_hash=self.spec_hash, status=self.status, created_at=self.created_at,
            method=i.method, method_params=dict(i.params), method_source=i.method_source, model=i.model,
            model_revision=i.model_revision, pattern=i.pattern, sparsity=i.sparsity,
            achieved_sparsity=m.achieved_sparsity if m else None, suite=i.suite.name, suite_version=i.suite.version,
            tasks={"names": list(i.tasks)}, seed=i.seed, calibration=m.calibration if m else None, device=self.device,
            hardware=self.hardware, prune_time_s=m.prune_time_s if m else None, eval_time_s=m.eval_time_s if m else None,
            peak_memory_mb=m.peak_memory_mb if m else None, sparsebench_version=self.sparsebench_version,
            torch_version=self.torch_version, transformers_version=self.transformers_version, git_sha=self.git_sha,
            provenance=dict(self.provenance), spec={"identity": i.payload(), "request": dict(self.request)}, error=self.error,
        )


def record_from_columns(cols: Mapping[str, Any], metrics: Iterable[Mapping[str, Any]] = (),
                        timings: Iterable[Mapping[str, Any]] = ()) -> RunRecord:
    """The record that stored rows describe (a bundle's, a database's); :class:`RecordError` where
    they are inconsistent: every identity column must agree with ``spec.identity``, and the
    spec hash with the identity."""
    from .errors import InvalidSpecError

    spec = cols.get("spec")
    if not isinstance(spec, Mapping) or set(spec) != {"identity", "request"} or not isinstance(spec["request"], Mapping):
        raise RecordError("spec must be {\"identity\": {...}, \"request\": {...}}")
    try:
        identity = Identity.from_payload(spec["identity"])
    except InvalidSpecError as exc:
        raise RecordError(f"spec.identity: {exc}") from None
    names, sparsity = (cols.get("tasks") or {}).get("names"), cols.get("sparsity")
    if isinstance(names, list) and sorted(names) == sorted(identity.tasks):  # the identity sorts; keep the stored order
        identity = dataclasses.replace(identity, tasks=tuple(names))
    if isinstance(sparsity, float) and round(sparsity, 6) == identity.sparsity:  # the identity rounds
        identity = dataclasses.replace(identity, sparsity=sparsity)
    completed = cols.get("status") == "completed"
    outcome: Measurements | str = Measurements(
        cols.get("achieved_sparsity"), cols.get("prune_time_s"), cols.get("eval_time_s"), cols.get("peak_memory_mb"),
        cols.get("calibration"), tuple(MetricRecord.from_columns(m) for m in metrics), tuple(TimingRecord.from_mapping(t) for t in timings),
    ) if completed else str(cols.get("error"))
    if completed and any(getattr(outcome, k) is None for k in ("achieved_sparsity", "prune_time_s", "eval_time_s", "peak_memory_mb")):
        raise RecordError("a completed run needs achieved_sparsity, prune_time_s, eval_time_s and peak_memory_mb")
    record = RunRecord(
        identity=identity, status="completed" if completed else "failed", created_at=cols["created_at"], request=dict(spec["request"]),
        device=cols["device"], hardware=cols["hardware"], provenance=dict(cols["provenance"]),
        sparsebench_version=cols["sparsebench_version"], torch_version=cols["torch_version"],
        transformers_version=cols["transformers_version"], git_sha=cols["git_sha"],
        measured=outcome if completed else None, error=None if completed else outcome,
    )
    rebuilt = record.columns()
    for key, value in rebuilt.items():
        if key not in ("created_at", "provenance", "spec") and cols.get(key) != value:
            what = "spec_hash does not match the run's identity" if key == "spec_hash" else f"{key} disagrees with spec.identity"
            raise RecordError(what)
    return record


def build_record(
    identity: Identity,
    *,
    request: Mapping[str, Any],
    device: str,
    hardware: str,
    provenance: Mapping[str, Any],
    outcome: Measurements | str,
    created_at: dt.datetime | None = None,
) -> RunRecord:
    """The record of a run: ``outcome`` is its measurements (completed) or its error (failed)."""
    packages = provenance.get("packages", {})
    failed = isinstance(outcome, str)
    return RunRecord(
        identity=identity, status="failed" if failed else "completed", created_at=created_at or dt.datetime.now(dt.timezone.utc),
        request=dict(request), device=device, hardware=hardware, provenance=dict(provenance),
        sparsebench_version=str(packages.get("sparsebench", "unknown")), torch_version=str(packages.get("torch", "unknown")),
        transformers_version=str(packages.get("transformers", "unknown")), git_sha=str(provenance.get("git_sha", "unknown")),
        measured=None if failed else outcome, error=outcome if failed else None,
    )


def measurements(achieved_sparsity: float, prune_time_s: float, eval_time_s: float, peak_memory_mb: float, calibration: str | None,
                 metrics: Iterable[Metric], timings: Iterable[Mapping[str, Any]] = ()) -> Measurements:
    """Measurements from the task metrics and timing rows the runner collected."""
    return Measurements(float(achieved_sparsity), float(prune_time_s), float(eval_time_s), float(peak_memory_mb), calibration,
                        tuple(MetricRecord.of(m) for m in metrics), tuple(TimingRecord.from_mapping(t) for t in timings))
