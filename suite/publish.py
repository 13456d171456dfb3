"""Published results: one bundle file per run in a folder that is committed (``results/runs/``).

A sweep with ``--publish DIR`` first imports every bundle already in ``DIR`` (so a fresh
clone resumes where the published data stops: those specs count as stored), then writes
each run it stores as ``DIR/<model>/<spec hash[:16]>.json`` the moment it is stored. One
file per run keeps each commit small, makes a half-finished sweep's work safe to commit,
and never rewrites a published file (the spec hash names it; a re-run of the same spec is
skipped). A run the database holds but the folder does not (the sweep was stopped between
storing and publishing it, or its file was deleted while the database kept it) is published
when the next sweep of its grid starts: to measure a spec again, delete its file *and* rebuild
the index. The database stays an index rebuilt from these files (``sparsebench import``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .bundles import BundleError, ImportReport, bundle_files, dumps, export_bundle, read_bundles, store_bundles
from .store import Store

SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def bundle_path(directory: Path, model: str, spec_hash: str) -> Path:
    """Where the bundle of one run lives: a folder per model, the file named by its spec hash."""
    return Path(directory) / SAFE.sub("-", model).strip("-") / f"{spec_hash[:16]}.json"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from None


def publish_run(store: Store, run_id: int, directory: Path) -> Path:
    """Export the stored run ``run_id`` as its own bundle under ``directory``; return the file."""
    bundle = export_bundle(store, id=int(run_id))
    if len(bundle["runs"]) != 1:
        raise BundleError(f"no stored run {run_id} to publish")
    run = bundle["runs"][0]
    path = bundle_path(directory, run["model"], run["spec_hash"])
    write_text_atomic(path, dumps(bundle))
    return path


def _published_files(directory: Path) -> list[Path]:
    directory = Path(directory)
    return bundle_files([directory]) if directory.is_dir() else []


def load_published(store: Store, directory: Path, specs: Iterable[str] = ()) -> tuple[ImportReport | None, list[Path]]:
    """Import the bundles already published under ``directory`` (report None when there are none),
    then publish each completed run among ``specs`` that has no bundle there yet; return both.

    Each bundle is read and validated once.
    """
    checked = read_bundles(_published_files(directory))
    report = store_bundles(store, checked) if checked else None
    published = {r.spec_hash for c in checked for r in c.runs}
    runs = [store.has_run(h) for h in dict.fromkeys(specs) if h not in published]
    return report, [publish_run(store, run.id, directory) for run in runs if run is not None]


def published_hashes(directory: Path) -> set[str]:
    """Spec hashes of the runs published under ``directory`` (each bundle validated; no database)."""
    return {r.spec_hash for checked in read_bundles(_published_files(directory)) for r in checked.runs}
