"""What a result bundle is, checked: its format constants, the parser (size, UTF-8, strict JSON)
and :func:`validate`, which checks every field of every row before anything is written.

The field rules come from the store's SQLAlchemy columns (types, string lengths, nullability),
so the bundle schema follows the database schema; ranges and names are checked on top. Each run
is rebuilt as a :class:`~sparsebench.record.RunRecord`, which checks that every identity column
agrees with the run's stored identity and that the spec hash is the hash of that identity (the
same function the runner uses). The content hash detects edits and corruption; it is not a
signature (anyone can recompute it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String

from .errors import SparsebenchError
from .patterns import parse_pattern
from .record import RecordError, RunRecord, record_from_columns
from .spec import canonical_json
from .store_schema import SCHEMA_VERSION, MetricRow, Run, TimingRow

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



def content_hash(bundle: Mapping[str, Any]) -> str:
    """``sha256:`` over the canonical JSON of everything but the hash itself."""
    return "sha256:" + hashlib.sha256(canonical_json({k: v for k, v in bundle.items() if k != "content_hash"})).hexdigest()



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
class Checked:
    runs: list[RunRecord]
    timings: list[dict[str, Any]]


def validate(bundle: Mapping[str, Any], where: str) -> Checked:
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
    return Checked(checked, standalone)

