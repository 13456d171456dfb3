"""The run specification, the identity of a result, and its hash.

A :class:`RunSpec` is what a user asks for (strings parsed into types at the CLI edge). An
:class:`Identity` is what defines the numbers of a result: the method with its parameters and
the hash of its source, the model and the revision loaded, the pattern and sparsity, the
suite's identity, the tasks and the seed, and, only for runs that time kernels, the kernels
and the hardware they ran on. :func:`spec_hash` hashes it with :func:`digest`, which also
hashes a suite's effective settings. Nothing about the process (threads, device index,
time) is part of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidSpecError
from .patterns import Pattern, Unstructured


@dataclass(frozen=True)
class RunSpec:
    """Everything a user asks for. Strings are parsed into these types at the CLI edge."""

    method: str = "magnitude"
    params: Any = None  # the method's frozen Params instance (None = defaults)
    model: str = "llama"
    pattern: Pattern = field(default_factory=Unstructured)
    sparsity: float | None = 0.5
    suite: Any = "quick"  # a registered suite's name, a suite file's path, or a sparsebench.suites.Suite
    tasks: tuple[str, ...] | None = None  # None = the suite's tasks
    seed: int = 0
    device: str = "cpu"
    kernels: tuple[str, ...] = ()  # registered kernel names, or "auto" (the fastest per layer shape)
    cache: str = "cold"  # the cache regime of the kernel timings
    latency_dtype: str | None = None  # time the kernels on the model cast to this dtype (None: as loaded)
    # keep the model in CPU memory; calibration moves one block at a time to `device` (a GPU),
    # evaluation runs where the model is. Like the device, it does not define the numbers
    offload: bool = False
    threads: int | None = None  # torch CPU threads for the run; None = torch's default (all cores)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidSpecError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise InvalidSpecError(f"threads must be an integer >= 1, got {self.threads!r}")

    def request(self) -> dict[str, Any]:
        """How the run was asked for, beyond its identity: stored with the record, not hashed."""
        return {"model": self.model, "device": self.device, "offload": self.offload}


def params_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


def nonfinite_path(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinite float inside ``value`` (dicts, lists), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path or "value"
    if isinstance(value, Mapping):
        for k, v in value.items():
            if (found := nonfinite_path(v, f"{path}.{k}" if path else str(k))) is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if (found := nonfinite_path(v, f"{path}[{i}]")) is not None:
                return found
    return None


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, finite numbers only: the same bytes for the same content."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode()


def digest(obj: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


@dataclass(frozen=True)
class SuiteIdentity:
    """What identifies a suite's protocol in a result: its name (derived, ``NAME+HASH6``, where
    its settings are not the registered suite's), its version and the digest of its effective
    settings (see :class:`sparsebench.suites.Suite`)."""

    name: str
    version: str
    settings: str

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "settings": self.settings}

    @classmethod
    def from_payload(cls, data: Any) -> SuiteIdentity:
        keys = {"name", "version", "settings"}
        if not isinstance(data, Mapping) or set(data) != keys or not all(isinstance(v, str) for v in data.values()):
            raise InvalidSpecError(f"a suite identity is {{name, version, settings}}, got {str(data)[:80]}")
        return cls(data["name"], data["version"], data["settings"])


@dataclass(frozen=True)
class Identity:
    """What defines a result's numbers; :func:`spec_hash` hashes exactly this."""

    method: str
    params: Mapping[str, Any]  # JSON values
    method_source: str  # sha256 of the method's source (see sparsebench.source_hash)
    model: str
    model_revision: str
    pattern: str
    sparsity: float
    suite: SuiteIdentity
    tasks: tuple[str, ...]
    seed: int
    kernels: tuple[str, ...] = ()
    hardware: str | None = None  # only for runs that time kernels: the machine the timings are of
    cache: str | None = None  # only for runs that time kernels: the cache regime of the timings
    latency_dtype: str | None = None  # only for runs that time kernels: the dtype timed (None: as loaded)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidSpecError(f"seed must be an integer >= 0, got {self.seed!r}")
        if (where := nonfinite_path(dict(self.params))) is not None:
            raise InvalidSpecError(f"method {self.method!r}: parameter {where} is not a finite number")
        if not math.isfinite(self.sparsity):
            raise InvalidSpecError(f"sparsity must be a finite number, got {self.sparsity!r}")
        if self.kernels and not self.hardware:
            raise InvalidSpecError("a run that times kernels needs the hardware in its identity")
        if not self.kernels and (self.hardware, self.cache, self.latency_dtype) != (None, None, None):
            raise InvalidSpecError("the hardware, cache regime and latency dtype are part of a run's identity only when it times kernels")

    def payload(self) -> dict[str, Any]:
        out = {
            "method": self.method,
            "params": dict(self.params),
            "method_source": self.method_source,
            "model": self.model,
            "model_revision": self.model_revision,
            "pattern": self.pattern,
            "sparsity": round(float(self.sparsity), 6),
            "suite": self.suite.payload(),
            "tasks": sorted(self.tasks),
            "seed": self.seed,
            "kernels": sorted(self.kernels),
        }
        if self.kernels:
            out["hardware"] = self.hardware
            out.update({k: v for k, v in (("cache", self.cache), ("latency_dtype", self.latency_dtype)) if v is not None})
        return out

    @classmethod
    def from_payload(cls, data: Any) -> Identity:
        """The identity a stored :meth:`payload` describes; :class:`InvalidSpecError` if malformed."""
        expected = {"method": str, "params": dict, "method_source": str, "model": str, "model_revision": str, "pattern": str,
                    "sparsity": (int, float), "suite": dict, "tasks": list, "seed": int, "kernels": list}
        if not isinstance(data, Mapping):
            raise InvalidSpecError("an identity is a JSON object")
        unknown = set(data) - set(expected) - {"hardware", "cache", "latency_dtype"}
        missing = set(expected) - set(data)
        if unknown or missing:
            raise InvalidSpecError(f"identity has unknown field(s) {sorted(unknown)} or lacks {sorted(missing)}")
        for key, typ in expected.items():
            if isinstance(data[key], bool) or not isinstance(data[key], typ):
                raise InvalidSpecError(f"identity field {key!r} has the wrong type")
        for key in ("tasks", "kernels"):
            if not all(isinstance(x, str) for x in data[key]):
                raise InvalidSpecError(f"identity field {key!r} must list strings")
        for key in ("hardware", "cache", "latency_dtype"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InvalidSpecError(f"identity field {key!r} must be a string")
        return cls(data["method"], dict(data["params"]), data["method_source"], data["model"], data["model_revision"],
                   data["pattern"], float(data["sparsity"]), SuiteIdentity.from_payload(data["suite"]), tuple(data["tasks"]),
                   data["seed"], tuple(data["kernels"]), data.get("hardware"), data.get("cache"), data.get("latency_dtype"))


def spec_hash(identity: Identity) -> str:
    """The hash a result is stored under: the digest of its identity."""
    return digest(identity.payload())


TIMING_FIELDS = ("kernels", "hardware", "cache", "latency_dtype")  # what a run times, not what it scores


def quality_group(identity_payload: Mapping[str, Any]) -> str:
    """The digest of an identity without its seed and what it times: runs that share it scored the
    same pruned model on the same items (a run that times kernels and its untimed twin, any seed)."""
    return digest({k: v for k, v in identity_payload.items() if k != "seed" and k not in TIMING_FIELDS})


def pruning_group(identity_payload: Mapping[str, Any]) -> str:
    """The digest of an identity without its seed, what it times and the tasks it scored: runs that
    share it pruned the same model the same way (method, parameters, pattern, sparsity, and the
    suite's settings, calibration included), so a speedup one of them measured is that of the
    others' pruned model too (across seeds, as on a leaderboard row)."""
    return digest({k: v for k, v in identity_payload.items() if k not in ("seed", "tasks", *TIMING_FIELDS)})
