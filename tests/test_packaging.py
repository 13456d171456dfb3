"""Both a regular (non-editable) and the editable install expose the `sparsebench.*` packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = (
    "import sparsebench, sparsebench.methods, sparsebench.tasks, sparsebench.kernels, sparsebench.site, sparsebench.commands; "
    "from sparsebench.pruning import methods; assert 'magnitude' in methods.list(); "
    "from sparsebench.task import tasks; assert {'squad-retrieval', 'imagenet-samples', 'arc_easy'} <= set(tasks.list()); "
    "from sparsebench.suites import suites; assert {'quick', 'paper', 'unit', 'wikitext2-ref'} <= set(suites.list()); "
    "print(sparsebench.methods.__file__)"
)


@pytest.mark.slow
def test_regular_install_imports(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True)
    # no generic top-level names are shipped into site-packages
    top = {p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info"))}
    assert top - {"bin"} == {"sparsebench"}, top
    shipped = {p.name for p in (target / "sparsebench" / "builtin_suites").glob("*.toml")}  # package data: the suite files
    assert {p.name for p in (ROOT / "suite" / "builtin_suites").glob("*.toml")} == shipped and "wikitext2-ref.toml" in shipped
    templates = {p.name for p in (target / "sparsebench" / "site" / "templates").iterdir()}  # the site's and the README plot's
    assert {p.name for p in (ROOT / "site" / "templates").iterdir()} == templates and "plot.svg" in templates
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(target))


def test_current_install_imports():
    out = subprocess.run([sys.executable, "-c", CHECK], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("__init__.py")
