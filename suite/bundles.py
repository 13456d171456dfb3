"""Result bundles: a schema-versioned JSON file of runs (metrics, timings, provenance) + a content hash.

``export_bundle`` turns stored runs into a bundle; ``import_bundles`` validates one or more
bundle files completely (size, JSON, schema version, field names and types, ranges, the
content hash, each run's spec hash) and only then writes them in ONE transaction, skipping
runs whose spec hash is already stored. A bad bundle is rejected with a one-line
:class:`BundleError` and nothing is written.

Each run is then rebuilt as a :class:`~sparsebench.record.RunRecord`, which checks that every
identity column agrees with the run's stored identity and that the spec hash is the hash of
that identity (the same function the runner uses).

The field rules come from the store's SQLAlchemy columns (types, string lengths, nullability),
so the bundle schema follows the database schema; ranges and names are checked on top. The
content hash detects edits and corruption; it is not a signature (anyone can recompute it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, select
from sqlalchemy.orm import Session

from . import __version__
from .errors import SparsebenchError
from .patterns import parse_pattern
from .record import RecordError, RunRecord, record_from_columns
from .spec import canonical_json, nonfinite_path
from .store import SCHEMA_VERSION, MetricRow, Run, Store, TimingRow, run_row

FORMAT = "sparsebench-results"
BUNDLE_SCHEMA_VERSION = 3
DEFAULT_MAX_BYTES = 32 * 2**20
MAX_DEPTH = 12  # nesting of JSON values (provenance is ~4 deep)
TEXT_MAX = 16_384  # unbounded Text columns
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=\-]*$")  # method, model, suite, task, kernel, ... names
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TOP_KEYS = {"format", "schema_version", "store_schema_version", "exported_at", "exported_by", "runs", "timings", "content_hash"}
NAME_FIELDS = {"method", "model", "suite", "suite_version", "model_revision", "task", "task_version", "metric", "kernel", "dtype", "device"}
NONNEG = {"seed", "prune_time_s", "eval_time_s", "peak_memory_mb", "stderr", "n", "max_abs_error", "ci_seed"}
POSITIVE = {"median_s", "p10_s", "p90_s", "dense_median_s", "speedup", "ideal_speedup", "iterations", "threads", "ci_level", "ci_resamples"}
CHOICES = {("runs", "status"): {"completed", "failed"}, ("timings", "status"): {"ok", "unsupported", "failed"},
           ("timings", "scope"): {"layer", "prefill", "decode"}}


class BundleError(SparsebenchError):
    """A result bundle is malformed, tampered with, too large or unsafe."""


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


def content_hash(bundle: Mapping[str, Any]) -> str:
    """``sha256:`` over the canonical JSON of everything but the hash itself."""
    return "sha256:" + hashlib.sha256(canonical_json({k: v for k, v in bundle.items() if k != "content_hash"})).hexdigest()


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse(data: bytes, where: str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise BundleError(f"{where}: bundle is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise BundleError(f"{where}: not UTF-8 text") from None
    except RecursionError:
        raise BundleError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:
        raise BundleError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BundleError(f"{where}: a bundle is a JSON object, got {type(obj).__name__}")
    return obj


def _depth(value: Any, limit: int) -> int:
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def _check_value(table: str, col: Any, value: Any, where: str) -> Any:
    """Type- and range-check one column value; returns the value ready for the ORM."""
    name, typ = col.name, col.type
    if value is None:
        if not col.nullable:
            raise BundleError(f"{where}.{name}: must not be null")
        return None
    if isinstance(typ, Boolean):
        if not isinstance(value, bool):
            raise BundleError(f"{where}.{name}: must be true or false, got {value!r:.40}")
    elif isinstance(typ, Integer):
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**62:
            raise BundleError(f"{where}.{name}: must be an integer, got {value!r:.40}")
    elif isinstance(typ, Float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BundleError(f"{where}.{name}: must be a finite number, got {value!r:.40}")
        value = float(value)
    elif isinstance(typ, DateTime):
        try:
            value = dt.datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
        except ValueError:
            value = None
        if value is None:
            raise BundleError(f"{where}.{name}: must be an ISO 8601 date-time")
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
    elif isinstance(typ, String):
        limit = typ.length or TEXT_MAX
        if not isinstance(value, str):
            raise BundleError(f"{where}.{name}: must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise BundleError(f"{where}.{name}: longer than {limit} characters")
        if CONTROL.search(value):
            raise BundleError(f"{where}.{name}: contains control characters")
        if name in NAME_FIELDS and not NAME.match(value):
            raise BundleError(f"{where}.{name}: {value[:40]!r} is not a valid name (letters, digits and ._:/@+=- only)")
    elif isinstance(typ, JSON):
        if not isinstance(value, (dict, list)):
            raise BundleError(f"{where}.{name}: must be a JSON object or list")
        if _depth(value, MAX_DEPTH) > MAX_DEPTH:
            raise BundleError(f"{where}.{name}: nested deeper than {MAX_DEPTH} levels")
    choices = CHOICES.get((table, name))
    if choices is not None and value not in choices:
        raise BundleError(f"{where}.{name}: must be one of {sorted(choices)}, got {value!r:.40}")
    if name in NONNEG and value < 0:
        raise BundleError(f"{where}.{name}: must be >= 0, got {value!r}")
    if name in POSITIVE and value <= 0:
        raise BundleError(f"{where}.{name}: must be > 0, got {value!r}")
    return value


def _check_row(model: type, row: Any, where: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise BundleError(f"{where}: must be a JSON object")
    table = model.__tablename__
    cols = {c.name: c for c in model.__table__.columns if c.name not in ("id", "run_id")}
    unknown = sorted(set(row) - set(cols) - set(extra))
    if unknown:
        raise BundleError(f"{where}: unknown field {unknown[0]!r}")
    out = {}
    for name, col in cols.items():
        if name not in row and not col.nullable:
            raise BundleError(f"{where}: missing field {name!r}")
        out[name] = _check_value(table, col, row.get(name), where)
    return out


def _check_sparsity(row: Mapping[str, Any], where: str, keys: Iterable[str]) -> None:
    for key in keys:
        v = row.get(key)
        if v is not None and not 0.0 <= v <= 1.0:
            raise BundleError(f"{where}.{key}: must be in [0, 1], got {v!r}")
    try:
        if str(parse_pattern(row["pattern"])) != row["pattern"]:
            raise SparsebenchError("not canonical")
    except SparsebenchError:
        raise BundleError(f"{where}.pattern: {row['pattern'][:40]!r} is not a sparsity pattern") from None


def _check_timing(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    t = _check_row(TimingRow, row, where)
    _check_sparsity(t, where, ("sparsity",))
    if t["status"] == "ok" and (t["median_s"] is None or t["speedup"] is None):
        raise BundleError(f"{where}: an 'ok' timing needs median_s and speedup")
    if t["status"] != "ok" and (t["median_s"] is not None or t["speedup"] is not None):
        raise BundleError(f"{where}: a {t['status']!r} timing must not carry a time or speedup")
    return t


@dataclass(frozen=True)
class _Checked:
    runs: list[RunRecord]
    timings: list[dict[str, Any]]


def validate(bundle: Mapping[str, Any], where: str) -> _Checked:
    """Check everything about a parsed bundle; raise :class:`BundleError` on the first problem."""
    unknown = sorted(set(bundle) - TOP_KEYS)
    if unknown:
        raise BundleError(f"{where}: unknown top-level field {unknown[0]!r}")
    if bundle.get("format") != FORMAT:
        raise BundleError(f"{where}: not a sparsebench results bundle (format {str(bundle.get('format'))[:40]!r})")
    version = bundle.get("schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise BundleError(f"{where}: bundle schema version {str(version)[:20]} is not supported (this sparsebench reads {BUNDLE_SCHEMA_VERSION})")
    if bundle.get("store_schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{where}: store schema version {str(bundle.get('store_schema_version'))[:20]!r} != {SCHEMA_VERSION}")
    declared = bundle.get("content_hash")
    if not isinstance(declared, str):
        raise BundleError(f"{where}: missing content_hash")
    if declared != content_hash(bundle):
        raise BundleError(f"{where}: content hash mismatch: the bundle was modified after export")
    runs, timings = bundle.get("runs"), bundle.get("timings", [])
    if not isinstance(runs, list) or not isinstance(timings, list):
        raise BundleError(f"{where}: 'runs' and 'timings' must be lists")
    checked: list = []
    seen: set[str] = set()
    for i, raw in enumerate(runs):
        w = f"{where}: runs[{i}]"
        r = _check_row(Run, raw, w, extra=("metrics", "timings"))
        if not HEX64.match(r["spec_hash"]):
            raise BundleError(f"{w}.spec_hash: must be 64 lowercase hex digits")
        if r["spec_hash"] in seen:
            raise BundleError(f"{w}: spec_hash {r['spec_hash'][:12]} appears twice in the bundle")
        seen.add(r["spec_hash"])
        _check_sparsity(r, w, ("achieved_sparsity",))
        if not 0.0 <= r["sparsity"] < 1.0:
            raise BundleError(f"{w}.sparsity: must be in [0, 1), got {r['sparsity']!r}")
        metrics, rtimings = raw.get("metrics", []), raw.get("timings", [])
        if not isinstance(metrics, list) or not isinstance(rtimings, list):
            raise BundleError(f"{w}: 'metrics' and 'timings' must be lists")
        ms = [_check_row(MetricRow, m, f"{w}.metrics[{j}]") for j, m in enumerate(metrics)]
        ts = [_check_timing(t, f"{w}.timings[{j}]") for j, t in enumerate(rtimings)]
        try:
            checked.append(record_from_columns(r, ms, [{k: v for k, v in t.items() if k != "created_at"} for t in ts]))
        except RecordError as exc:
            raise BundleError(f"{w}: {exc}") from None
    standalone = [_check_timing(t, f"{where}: timings[{j}]") for j, t in enumerate(timings)]
    return _Checked(checked, standalone)


def read_bundle(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict[str, Any], _Checked]:
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


def read_bundles(paths: Sequence[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> list[_Checked]:
    """Read and validate every bundle in ``paths`` (touching no database)."""
    return [read_bundle(p, max_bytes)[1] for p in paths]


def store_bundles(store: Store, checked: Sequence[_Checked], dry_run: bool = False) -> ImportReport:
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
