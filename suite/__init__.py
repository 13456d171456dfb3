"""sparsebench: the benchmark where a sparsity claim gets checked.

Prune a model with any registered method, verify the masks, evaluate fixed tasks,
measure real sparse-kernel latency, and store the result with full provenance.

>>> from sparsebench import RunSpec, Store, run
>>> result = run(RunSpec(method="magnitude", model="llama"), Store())  # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sparsebench")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["RunSpec", "Store", "run", "__version__"]


def __getattr__(name: str):
    """Lazy access to the main API, so ``import sparsebench`` does not import torch."""
    if name == "RunSpec":
        from .spec import RunSpec

        return RunSpec
    if name == "Store":
        from .store import Store

        return Store
    if name == "run":
        from .runner import run

        return run
    raise AttributeError(f"module 'sparsebench' has no attribute {name!r}")
