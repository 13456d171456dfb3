"""Result bundles: a schema-versioned JSON file of runs (metrics, timings, provenance) + a content hash.

``export_bundle`` turns stored runs into a bundle; ``import_bundles`` validates one or more
bundle files completely (:func:`~sparsebench.bundle_schema.validate`: size, JSON, schema
version, field names and types, ranges, the content hash, each run's spec hash) and only then
writes them in ONE transaction, skipping runs whose spec hash is already stored. A bad bundle
is rejected with a one-line :class:`BundleError` and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import __version__
from .bundle_schema import (BUNDLE_SCHEMA_VERSION, DEFAULT_MAX_BYTES, FORMAT, BundleError, Checked, content_hash, parse,
                            validate)
from .errors import SparsebenchError
from .spec import canonical_json, nonfinite_path
from .store import Store, run_row
from .store_schema import SCHEMA_VERSION, Run, TimingRow

__all__ = ["BundleError", "DEFAULT_MAX_BYTES", "ImportReport", "bundle_files", "content_hash", "dumps", "export_bundle",
           "import_bundles", "read_bundle", "read_bundles", "store_bundles"]


@dataclass(frozen=True)
class ImportReport:
    files: int
    runs_imported: int
    runs_skipped: int  # already stored (same spec hash)
    timings_imported: int
    timings_skipped: int
    dry_run: bool = False


# --------------------------------------------------------------------------- serialization


def _iso(value: dt.datetime) -> str:
    """UTC ISO 8601; naive datetimes (SQLite drops the zone) are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat()


def _row_dict(row: Any, skip: set[str]) -> dict[str, Any]:
    out = {}
    for col in row.__table__.columns:
        if col.name in skip:
            continue
        value = getattr(row, col.name)
        out[col.name] = _iso(value) if isinstance(value, dt.datetime) else value
    return out



def timing_key(row: Mapping[str, Any]) -> str:
    """Identity of a standalone timing row (its whole content), for de-duplication."""
    return hashlib.sha256(canonical_json(row)).hexdigest()


def export_bundle(store: Store, kernel_timings: bool = False, **filters: Any) -> dict[str, Any]:
    """A bundle of the runs matching ``filters`` (and, optionally, all standalone kernel timings).

    The bundle is validated as ``import`` would validate it, so a database holding something
    import rejects (e.g. an HTML name) fails here, with the same one-line reason.
    """
    ids = store.runs(**filters)["id"].tolist()
    with Session(store.engine) as s:
        runs = s.scalars(select(Run).where(Run.id.in_(ids)).order_by(Run.id)).all() if ids else []
        run_rows = []
        for r in runs:
            d = _row_dict(r, {"id"})
            d["metrics"] = [_row_dict(m, {"id", "run_id"}) for m in sorted(r.metrics, key=lambda m: m.id)]
            d["timings"] = [_row_dict(t, {"id", "run_id"}) for t in sorted(r.timings, key=lambda t: t.id)]
            _require_finite(d, f"run {r.id}")
            run_rows.append(d)
        standalone = []
        if kernel_timings:
            rows = s.scalars(select(TimingRow).where(TimingRow.run_id.is_(None)).order_by(TimingRow.id)).all()
            standalone = [_row_dict(t, {"id", "run_id"}) for t in rows]
            for t, row in zip(standalone, rows):
                _require_finite(t, f"timing {row.id}")
    bundle = {
        "format": FORMAT,
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "store_schema_version": SCHEMA_VERSION,
        "exported_at": _iso(dt.datetime.now(dt.timezone.utc)),
        "exported_by": f"sparsebench {__version__}",
        "runs": run_rows,
        "timings": standalone,
    }
    bundle["content_hash"] = content_hash(bundle)
    validate(bundle, "export")  # never write a bundle that import would reject
    return bundle


def _require_finite(row: Mapping[str, Any], what: str) -> None:
    if (path := nonfinite_path(row)) is not None:
        raise BundleError(f"{what} in the database holds a non-finite number at {path}, which a bundle (JSON) cannot carry; "
                          "delete that run or export without it")


def dumps(bundle: Mapping[str, Any]) -> str:
    return json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- validation



def read_bundle(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict[str, Any], Checked]:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:  # refuse before reading it into memory
            raise BundleError(f"{path}: bundle is {size:,} bytes, over the {max_bytes:,}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    bundle = parse(data, str(path), max_bytes)
    return bundle, validate(bundle, str(path))


# --------------------------------------------------------------------------- import


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


def bundle_files(paths: Iterable[Path]) -> list[Path]:
    """``paths`` with each folder replaced by the ``*.json`` files anywhere under it (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise BundleError(f"{p}: no such bundle file or folder")
        out.extend(sorted(q for q in p.rglob("*.json") if q.is_file()) if p.is_dir() else [p])
    return out


def read_bundles(paths: Sequence[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> list[Checked]:
    """Read and validate every bundle in ``paths`` (touching no database)."""
    return [read_bundle(p, max_bytes)[1] for p in paths]


def store_bundles(store: Store, checked: Sequence[Checked], dry_run: bool = False) -> ImportReport:
    """Import validated bundles in one transaction (or nothing); runs and timings already stored are skipped."""
    runs = [r for c in checked for r in c.runs]
    hashes = [r.spec_hash for r in runs]
    n_runs = n_skip = n_t = n_tskip = 0
    try:
        with Session(store.write_engine) as s, s.begin():
            stored = set(s.scalars(select(Run.spec_hash).where(Run.spec_hash.in_(hashes)))) if hashes else set()
            existing = {timing_key(_row_dict(t, {"id", "run_id"}))
                        for t in s.scalars(select(TimingRow).where(TimingRow.run_id.is_(None)))}
            for record in runs:
                if record.spec_hash in stored:  # already in the database, or in an earlier bundle of this import
                    n_skip += 1
                    continue
                stored.add(record.spec_hash)
                s.add(run_row(record))
                n_runs += 1
            for t in (t for c in checked for t in c.timings):
                key = timing_key({k: _iso(v) if isinstance(v, dt.datetime) else v for k, v in t.items()})
                if key in existing:
                    n_tskip += 1
                    continue
                existing.add(key)
                s.add(TimingRow(**t))
                n_t += 1
            s.flush()
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except SparsebenchError:
        raise
    except Exception as exc:  # a database error: the transaction rolled back
        raise BundleError(f"import into {store.url} failed, nothing was imported: {type(exc).__name__}: {exc}") from None
    return ImportReport(len(checked), n_runs, n_skip, n_t, n_tskip, dry_run)


def import_bundles(store: Store, paths: Sequence[Path], max_bytes: int = DEFAULT_MAX_BYTES, dry_run: bool = False) -> ImportReport:
    """Validate every bundle in ``paths``, then import them all in one transaction (or none)."""
    return store_bundles(store, read_bundles(paths, max_bytes), dry_run)
