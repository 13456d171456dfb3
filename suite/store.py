"""Results storage (the tables are in :mod:`sparsebench.store_schema`): one transaction per run.

SQLite by default (``results/sparsebench.db``); any SQLAlchemy URL works. A run is written
with its metric and timing rows in ONE transaction, so an interrupted run leaves nothing;
the ``spec_hash`` is unique, so the same spec is stored once.

Many writers are safe: SQLite runs in WAL mode with a busy timeout and writes are retried
when the file is locked; a PostgreSQL URL (``postgresql+psycopg://...``) serves a shared
database. Creating the schema is safe too when several first writers start at once on a new
database. A spec that failed is kept as one ``status="failed"`` row with its error; a later
success replaces it, and a failure never replaces a success.

Writers (``Store(url)``) create a missing SQLite file and its folder; readers
(``Store(url, create=False)``) never create anything and fail with one line instead.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, delete, event, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from .errors import StoreError
from .record import RunRecord
from .store_schema import SCHEMA_VERSION, Base, Meta, MetricRow, Run, TimingRow

DEFAULT_DB = Path("results") / "sparsebench.db"
WRITE_ATTEMPTS = 6  # a locked SQLite file (past its busy timeout) or a Postgres serialization failure


def default_url() -> str:
    """``$SPARSEBENCH_DB`` if set, else ``sqlite:///results/sparsebench.db`` (relative to the cwd)."""
    return os.environ.get("SPARSEBENCH_DB") or f"sqlite:///{DEFAULT_DB}"



def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; ignored in memory
        cur.close()


def _sqlite_immediate_writes(engine: Engine) -> None:
    """Writes take the write lock when they begin (``BEGIN IMMEDIATE``), so a read-then-write
    transaction (look up the spec's old row, replace it) cannot race another writer."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class _EmptyDatabase(StoreError):
    """A reader found a database without a sparsebench schema."""


class DuplicateRunError(StoreError):
    """A completed run with this spec hash is already stored (by this or another writer)."""

    def __init__(self, spec_hash: str, run_id: int):
        self.spec_hash, self.run_id = spec_hash, run_id
        super().__init__(f"spec {spec_hash[:12]} is already stored as run {run_id}")


def _retrying(write: Callable[[], int], url: str) -> int:
    """Run one write transaction; retry with backoff while the database is locked or busy, and
    after a unique-key clash (another writer stored the spec first: the retry sees its row;
    with several writers replacing one failed row, a writer can lose that race more than once)."""
    clashes = 0
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return write()
        except IntegrityError as exc:
            clashes += 1
            if clashes >= WRITE_ATTEMPTS:
                raise StoreError(f"cannot write to {url}: {getattr(exc, 'orig', exc)}") from None
        except OperationalError as exc:
            if attempt == WRITE_ATTEMPTS - 1:
                raise StoreError(f"cannot write to {url}: {getattr(exc, 'orig', exc)}") from None
            time.sleep(0.05 * 2**attempt)
        except DatabaseError as exc:
            raise StoreError(f"cannot write to {url}: {getattr(exc, 'orig', exc)}") from None
    raise StoreError(f"cannot write to {url}: still locked after {WRITE_ATTEMPTS} attempts")


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and for ``:memory:``)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


# Serializes schema creation between first writers. SQLite needs nothing: the schema is created
# in a ``BEGIN IMMEDIATE`` transaction, which holds the file's write lock.
SCHEMA_LOCK = {"postgresql": "SELECT pg_advisory_xact_lock(7345820917)"}


def run_row(record: RunRecord) -> Run:
    """The ORM rows (run, metrics, timings) of a record."""
    row = Run(**record.columns())
    row.metrics = [MetricRow(**m.columns()) for m in record.metrics]
    row.timings = [TimingRow(created_at=record.created_at, **t.columns()) for t in record.timings]
    return row


class Store:
    """A results database. Opening checks that it is a sparsebench database of this schema version.

    ``create=True`` (writers) creates the database (a SQLite file and its folder) and the schema
    when they do not exist; ``create=False`` (readers) refuses a missing or empty database.
    """

    def __init__(self, url: str | None = None, create: bool = True):
        self.url = url or default_url()
        path = _sqlite_path(self.url)
        if path is not None:
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
        self.write_engine = self.engine
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
            if path is not None:
                self.write_engine = create_engine(self.url)
                _sqlite_pragmas(self.write_engine)
                _sqlite_immediate_writes(self.write_engine)
        try:
            self._check_schema(create)
        except (DatabaseError, OperationalError) as exc:
            raise StoreError(f"cannot use database {self.url}: {getattr(exc, 'orig', None) or exc}") from None

    @classmethod
    def existing(cls, url: str | None = None) -> Store | None:
        """The database at ``url`` for reading, or None where there is none yet (nothing is created)."""
        url = url or default_url()
        path = _sqlite_path(url)
        if path is not None and not path.exists():
            return None
        try:
            return cls(url, create=False)
        except _EmptyDatabase:
            return None

    def _tables(self, conn: Connection | Engine) -> set[str]:
        existing = set(inspect(conn).get_table_names())
        foreign = existing - set(Base.metadata.tables)
        if Meta.__tablename__ not in existing and foreign:
            raise StoreError(f"{self.url} is not a sparsebench database (tables: {', '.join(sorted(foreign)[:5])})")
        return existing

    def _check_schema(self, create: bool) -> None:
        if Meta.__tablename__ not in self._tables(self.engine):
            if not create:
                raise _EmptyDatabase(f"{self.url} is empty")
            with self.write_engine.begin() as conn:  # one first writer at a time; the others find the schema made
                if lock := SCHEMA_LOCK.get(conn.dialect.name):
                    conn.execute(text(lock))
                if Meta.__tablename__ not in self._tables(conn):
                    Base.metadata.create_all(conn)
                    conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        with Session(self.engine) as s:
            version = s.get(Meta, "schema_version")
        if version is None or version.value != str(SCHEMA_VERSION):
            found = version.value if version else "none"
            raise StoreError(
                f"{self.url} has schema version {found}, this sparsebench needs {SCHEMA_VERSION}; "
                "use a new --db (or move the old file aside) and run the specs again"
            )

    # -- writing ------------------------------------------------------------------------
    def has_run(self, spec_hash: str, status: str | None = "completed") -> Run | None:
        """The stored run of ``spec_hash`` with this status (``None``: any status), if there is one."""
        stmt = select(Run).where(Run.spec_hash == spec_hash)
        if status is not None:
            stmt = stmt.where(Run.status == status)
        with Session(self.engine) as s:
            return s.scalars(stmt).first()

    def statuses(self, spec_hashes: Iterable[str]) -> dict[str, str]:
        """``{spec_hash: status}`` for those of ``spec_hashes`` that are stored."""
        hashes, out = list(spec_hashes), {}
        with Session(self.engine) as s:
            for i in range(0, len(hashes), 500):
                rows = s.execute(select(Run.spec_hash, Run.status).where(Run.spec_hash.in_(hashes[i:i + 500])))
                out.update((h, st) for h, st in rows)
        return out

    def write_run(self, record: RunRecord, replace: bool = False) -> int:
        """Insert a completed record with its metric and timing rows atomically; returns the run id.

        A failed record of the same spec is replaced; a completed one is replaced only with
        ``replace``, else :class:`DuplicateRunError` (also when another writer wins a race).
        """
        if record.status != "completed":
            raise StoreError(f"write_run stores completed runs; use write_failure for a {record.status!r} one")
        h = record.spec_hash

        def write() -> int:
            with Session(self.write_engine) as s, s.begin():
                old = s.scalars(select(Run).where(Run.spec_hash == h).with_for_update()).first()
                if old is not None:
                    if old.status == "completed" and not replace:
                        raise DuplicateRunError(old.spec_hash, old.id)
                    s.execute(delete(Run).where(Run.id == old.id))  # metrics/timings go by ON DELETE CASCADE
                row = run_row(record)
                s.add(row)
                s.flush()
                return row.id

        return _retrying(write, self.url)

    def write_failure(self, record: RunRecord) -> int:
        """Record that a spec failed; returns the row id.

        A completed run of the spec is left as it is; an earlier failure is replaced, and
        ``provenance["attempts"]`` counts the failures.
        """
        if record.status != "failed":
            raise StoreError(f"write_failure stores failed runs, got a {record.status!r} one")
        h = record.spec_hash

        def write() -> int:
            with Session(self.write_engine) as s, s.begin():
                old = s.scalars(select(Run).where(Run.spec_hash == h).with_for_update()).first()
                if old is not None and old.status == "completed":
                    return old.id
                attempts = 1 + (old.provenance.get("attempts", 1) if old is not None else 0)
                if old is not None:
                    s.execute(delete(Run).where(Run.id == old.id))
                row = run_row(record)
                row.provenance = {**row.provenance, "attempts": attempts}
                s.add(row)
                s.flush()
                return row.id

        return _retrying(write, self.url)

    def write_timings(self, timings: Iterable[Mapping[str, Any]]) -> int:
        """Insert standalone timing rows (kernel microbenchmarks) in one transaction."""
        now = dt.datetime.now(dt.timezone.utc)
        rows = [TimingRow(created_at=t.get("created_at", now), **{k: v for k, v in t.items() if k != "created_at"}) for t in timings]
        with Session(self.write_engine) as s, s.begin():
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

    def results(self, status: str | None = "completed", **filters: Any) -> pd.DataFrame:
        """Runs joined with their metrics: one row per (run, task, metric); completed runs unless ``status``."""
        runs = self.runs(status=status, **filters)
        if runs.empty:
            return runs
        m = self.metrics(runs["id"].tolist())
        cols = ["id", "method", "method_params", "model", "pattern", "sparsity", "achieved_sparsity", "suite", "suite_version", "seed",
                "status", "prune_time_s", "eval_time_s", "peak_memory_mb", "device", "created_at", "spec_hash"]
        return runs[cols].merge(m.drop(columns=["id"]), left_on="id", right_on="run_id", how="left").drop(columns=["run_id"])
