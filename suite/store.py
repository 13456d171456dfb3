"""Results storage: SQLAlchemy 2 tables, schema version, one transaction per run.

SQLite by default (``results/sparsebench.db``); any SQLAlchemy URL works. A run is written
with its metric and timing rows in ONE transaction, so an interrupted run leaves nothing;
the ``spec_hash`` is unique, so the same spec is stored once.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from .errors import StoreError

SCHEMA_VERSION = 1
DEFAULT_DB = Path("results") / "sparsebench.db"


def default_url() -> str:
    """``$SPARSEBENCH_DB`` if set, else ``sqlite:///results/sparsebench.db`` (relative to the cwd)."""
    return os.environ.get("SPARSEBENCH_DB") or f"sqlite:///{DEFAULT_DB}"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Meta(Base):
    __tablename__ = "sparsebench_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    status: Mapped[str] = mapped_column(String(16))  # "completed" | "failed"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    method: Mapped[str] = mapped_column(String(128), index=True)
    method_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(256), index=True)
    model_revision: Mapped[str] = mapped_column(String(128))
    pattern: Mapped[str] = mapped_column(String(32))
    sparsity: Mapped[float] = mapped_column(Float)
    achieved_sparsity: Mapped[float | None] = mapped_column(Float, nullable=True)
    suite: Mapped[str] = mapped_column(String(64), index=True)
    suite_version: Mapped[str] = mapped_column(String(32))
    tasks: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"names": [...]}
    seed: Mapped[int] = mapped_column(Integer)
    calibration: Mapped[str | None] = mapped_column(String(256), nullable=True)
    device: Mapped[str] = mapped_column(String(64))
    hardware: Mapped[str] = mapped_column(String(256))
    prune_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    eval_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    sparsebench_version: Mapped[str] = mapped_column(String(64))
    torch_version: Mapped[str] = mapped_column(String(64))
    transformers_version: Mapped[str] = mapped_column(String(64))
    git_sha: Mapped[str] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[list[MetricRow]] = relationship(back_populates="run", cascade="all, delete-orphan")
    timings: Mapped[list[TimingRow]] = relationship(back_populates="run", cascade="all, delete-orphan")


class MetricRow(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(128))
    task_version: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    higher_is_better: Mapped[bool]
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    run: Mapped[Run] = relationship(back_populates="metrics")


class TimingRow(Base):
    """A latency measurement: per layer (microbenchmark) or end to end; standalone or with a run."""

    __tablename__ = "timings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(String(32))  # "layer" | "prefill" | "decode"
    kernel: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # "ok" | "unsupported" | "failed"
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pattern: Mapped[str] = mapped_column(String(32))
    sparsity: Mapped[float] = mapped_column(Float)
    dtype: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(64))
    hardware: Mapped[str] = mapped_column(String(256))
    shape: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"out":..,"in":..,"tokens":..} or model info
    median_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    p10_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    p90_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    iterations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dense_median_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    speedup: Mapped[float | None] = mapped_column(Float, nullable=True)
    ideal_speedup: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_abs_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    threads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    run: Mapped[Run | None] = relationship(back_populates="timings")


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


class Store:
    """A results database. Opening checks that it is writable and of this schema version."""

    def __init__(self, url: str | None = None, create: bool = True):
        self.url = url or default_url()
        if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
            path = Path(self.url.removeprefix("sqlite:///"))
            if create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the database folder {path.parent}: {exc.strerror or exc}") from None
            elif not path.exists():
                raise StoreError(f"no database at {path}")
        try:
            self.engine = create_engine(self.url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open database {self.url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
        self._check_schema(create)

    def _check_schema(self, create: bool) -> None:
        try:
            insp = inspect(self.engine)
            existing = set(insp.get_table_names())
            if Meta.__tablename__ not in existing:
                foreign = existing - set(Base.metadata.tables)
                if foreign:
                    raise StoreError(f"{self.url} is not a sparsebench database (tables: {', '.join(sorted(foreign)[:5])})")
                if not create:
                    raise StoreError(f"{self.url} is empty")
                Base.metadata.create_all(self.engine)
                with Session(self.engine) as s, s.begin():
                    s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            with Session(self.engine) as s:
                version = s.get(Meta, "schema_version")
            if version is None or version.value != str(SCHEMA_VERSION):
                found = version.value if version else "none"
                raise StoreError(
                    f"{self.url} has schema version {found}, this sparsebench needs {SCHEMA_VERSION}; "
                    "use a new --db or export/import the results"
                )
        except StoreError:
            raise
        except (DatabaseError, OperationalError) as exc:
            msg = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
            raise StoreError(f"cannot use database {self.url}: {msg}") from None

    # -- writing ------------------------------------------------------------------------
    def has_run(self, spec_hash: str) -> Run | None:
        with Session(self.engine) as s:
            return s.scalars(select(Run).where(Run.spec_hash == spec_hash)).first()

    def write_run(self, run: Mapping[str, Any], metrics: Iterable[Mapping[str, Any]] = (), timings: Iterable[Mapping[str, Any]] = (), replace: bool = False) -> int:
        """Insert one run with its metric and timing rows atomically; returns the run id."""
        try:
            with Session(self.engine) as s, s.begin():
                if replace:
                    old = s.scalars(select(Run).where(Run.spec_hash == run["spec_hash"])).first()
                    if old is not None:
                        s.delete(old)
                        s.flush()
                row = Run(**run)
                row.metrics = [MetricRow(**m) for m in metrics]
                now = run.get("created_at") or dt.datetime.now(dt.timezone.utc)
                row.timings = [TimingRow(created_at=now, **t) for t in timings]
                s.add(row)
                s.flush()
                return row.id
        except (DatabaseError, OperationalError) as exc:
            raise StoreError(f"cannot write to {self.url}: {getattr(exc, 'orig', exc)}") from None

    def write_timings(self, timings: Iterable[Mapping[str, Any]]) -> int:
        """Insert standalone timing rows (kernel microbenchmarks) in one transaction."""
        now = dt.datetime.now(dt.timezone.utc)
        rows = [TimingRow(created_at=t.get("created_at", now), **{k: v for k, v in t.items() if k != "created_at"}) for t in timings]
        with Session(self.engine) as s, s.begin():
            s.add_all(rows)
        return len(rows)

    # -- reading ------------------------------------------------------------------------
    def runs(self, **filters: Any) -> pd.DataFrame:
        """One row per run (columns of ``runs``), filtered by equality on any column."""
        stmt = select(Run)
        for key, value in filters.items():
            if value is None:
                continue
            col = getattr(Run, key, None)
            if col is None:
                raise StoreError(f"cannot filter runs by {key!r}")
            stmt = stmt.where(col.in_(value) if isinstance(value, (list, tuple, set)) else col == value)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt.order_by(Run.id), conn)

    def metrics(self, run_ids: Iterable[int] | None = None) -> pd.DataFrame:
        stmt = select(MetricRow)
        if run_ids is not None:
            stmt = stmt.where(MetricRow.run_id.in_(list(run_ids)))
        with self.engine.connect() as conn:
            return pd.read_sql(stmt.order_by(MetricRow.id), conn)

    def timings(self, **filters: Any) -> pd.DataFrame:
        stmt = select(TimingRow)
        for key, value in filters.items():
            if value is not None:
                stmt = stmt.where(getattr(TimingRow, key) == value)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt.order_by(TimingRow.id), conn)

    def results(self, **filters: Any) -> pd.DataFrame:
        """Runs joined with their metrics: one row per (run, task, metric)."""
        runs = self.runs(**filters)
        if runs.empty:
            return runs
        m = self.metrics(runs["id"].tolist())
        cols = ["id", "method", "model", "pattern", "sparsity", "achieved_sparsity", "suite", "suite_version", "seed",
                "status", "prune_time_s", "eval_time_s", "peak_memory_mb", "device", "created_at", "spec_hash"]
        return runs[cols].merge(m.drop(columns=["id"]), left_on="id", right_on="run_id", how="left").drop(columns=["run_id"])
