"""Contract tests run for every registered method (a new method gets them for free).

The checks themselves live once in :mod:`sparsebench.contract`, shared with
``sparsebench check-method``, for every pattern a method supports (unstructured,
unstructured-global, 2:4, 4:8, block4x4): target sparsity met, N:M valid, masks match the
zeroed weights, only targeted layers change, same seed gives the same mask, numeric
parameters declare their ranges; ``dense`` changes nothing.
"""

from __future__ import annotations

import pytest

from sparsebench.contract import check_method
from sparsebench.drivers import prune
from sparsebench.models import load_model, resolve_model
from sparsebench.pruning import PruneContext, methods
from sparsebench.suites import suites


@pytest.mark.parametrize("method", methods.list())
def test_method_contract(method, tiny_model_dir, request):
    family = request.node.callspec.params["tiny_model_dir"]
    checks = check_method(method, {family: tiny_model_dir}, calibration=suites.get("unit").calibration)
    failed = [f"{c.check} ({c.pattern}): {c.detail}" for c in checks if not c.passed]
    assert checks and not failed, failed


def test_dense_leaves_perplexity_unchanged(tiny_model_dirs):
    from sparsebench.patterns import Unstructured

    model_dir = tiny_model_dirs["llama"]
    task = suites.get("unit").make_task("lambada-ppl")
    ref = task.evaluate(load_model(resolve_model(str(model_dir))), progress=False)[0].value
    loaded = load_model(resolve_model(str(model_dir)))
    assert prune(methods.get("dense")(), PruneContext(loaded, Unstructured(), 0.0, 0, None, progress=False)) == {}
    assert task.evaluate(loaded, progress=False)[0].value == ref
