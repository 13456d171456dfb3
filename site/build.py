"""Build the static leaderboard: results database → DataFrames → page contexts → jinja2 → HTML files.

The site is plain files (HTML, one CSS file, one small script, inline SVG plots) that work
from ``file://`` with no network. Every value is escaped by jinja2's autoescape.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from sparsebench.errors import SparsebenchError
from sparsebench.store import Store

from .pages import Page, index_page, kernels_page, leaderboards, method_pages, model_pages, run_pages
from .protocols import Protocol, find_protocols, identities
from .tables import Frames

MARKER = ".sparsebench-site"


@dataclass(frozen=True)
class BuildReport:
    out: Path
    pages: tuple[str, ...]
    runs: int
    timings: int
    protocols: tuple[str, ...] = ()  # the boards' suite files, relative to out


def environment() -> Environment:
    return Environment(loader=PackageLoader("sparsebench.site", "templates"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def collect_pages(store: Store, suite_files: Sequence[Path] = ()) -> tuple[list[Page], Frames, list[Protocol]]:
    frames = Frames(store.runs(), store.metrics(), store.timings())
    protocols = find_protocols(identities(frames.runs), suite_files) if not frames.runs.empty else {}
    boards, methods, models = list(leaderboards(frames, protocols)), list(method_pages(frames)), list(model_pages(frames))
    pages = [index_page(frames, boards, methods, models), *boards, *methods, *models, kernels_page(frames), *run_pages(frames)]
    return pages, frames, list(protocols.values())


def _prepare(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise SparsebenchError(f"{out} exists and is not a sparsebench site; choose an empty or new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))


def build_site(store: Store, out: Path, progress: bool = True, suite_files: Sequence[Path] = ()) -> BuildReport:
    """Render every page into ``out`` (replaced as a whole once everything rendered), with each
    board's protocol file (the registered suite's, or the one of ``suite_files`` it ran with)."""
    from tqdm.auto import tqdm

    from sparsebench import __version__

    out = Path(out)
    pages, frames, protocols = collect_pages(store, suite_files)
    env = environment()
    tmp = _prepare(out)
    try:
        built = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        for page in tqdm(pages, desc="rendering site", unit="page", disable=not progress, leave=False):
            html = env.get_template(page.template).render(root=page.root, built=built, sb_version=__version__, **page.context)
            target = tmp / page.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(html, encoding="utf-8")
        for protocol in protocols:
            target = tmp / protocol.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(protocol.text, encoding="utf-8")
        static = tmp / "static"
        static.mkdir()
        for item in resources.files("sparsebench.site").joinpath("static").iterdir():
            if item.is_file():
                (static / item.name).write_bytes(item.read_bytes())
        (tmp / MARKER).write_text(f"built by sparsebench {__version__} at {built}\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildReport(out, tuple(p.path for p in pages), len(frames.runs), len(frames.timings), tuple(p.path for p in protocols))
