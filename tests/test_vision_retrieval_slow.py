"""The real offline assets: EfficientNet-Lite0 on imagenet-samples, SPLADE-tiny on SQuAD paragraphs.

Subsets keep these to about a minute on an idle 2-core machine; the full quick suites run
through ``sparsebench run`` (see the README).
"""

from __future__ import annotations

import os

import pytest

from sparsebench.calibration_data import CalibrationSpec
from sparsebench.runner import run
from sparsebench.spec import RunSpec
from sparsebench.suites import Suite, suites

pytestmark = pytest.mark.slow

if "vision-slow-test" not in suites:
    suites.register("vision-slow-test", Suite(
        "vision-slow-test", "1", "the first 64 imagenet-samples images",
        CalibrationSpec("imagenet-samples", nsamples=8, seqlen=2, seed=0),
        ("imagenet-samples",), {"imagenet-samples": {"batch_size": 32, "max_images": 64}},
        modality="image-classification",
    ))
if "retrieval-slow-test" not in suites:
    suites.register("retrieval-slow-test", Suite(
        "retrieval-slow-test", "1", "the first 50 SQuAD questions over all 803 paragraphs (128 tokens)",
        CalibrationSpec("lambada-text", nsamples=8, seqlen=64, seed=0),
        ("squad-retrieval",), {"squad-retrieval": {"max_queries": 50, "doc_max_length": 128, "batch_size": 16}},
        modality="masked-lm",
    ))


@pytest.fixture
def real_data(tmp_path, monkeypatch):
    if not os.environ.get("SPARSEBENCH_DATA_DIR"):
        pytest.skip("SPARSEBENCH_DATA_DIR (with imagenet-samples/) is not set")
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))  # the dense reference is computed here


def _by_name(result):
    return {m.name: m for m in result.metrics}


def test_efficientnet_lite0_dense_and_magnitude(real_data, store):
    dense = _by_name(run(RunSpec(method="dense", model="efficientnet-lite0", suite="vision-slow-test"), store, progress=False))
    assert dense["top1"].n == 64
    assert dense["top1"].value >= 0.75  # ImageNet weights on training images (0.887 on 150 of them)
    assert dense["top5"].value >= dense["top1"].value
    assert dense["top1_agreement"].value == 1.0
    res = run(RunSpec(method="magnitude", model="efficientnet-lite0", suite="vision-slow-test", sparsity=0.5), store, progress=False)
    assert res.report.achieved_sparsity == pytest.approx(0.5, abs=0.005)
    pruned = _by_name(res)
    assert pruned["top1_agreement"].details["dense_reference"] == "cache"
    assert pruned["top1_agreement"].value < 1.0  # 50% layer-wise magnitude moves predictions
    assert pruned["top1"].value < dense["top1"].value


def test_splade_tiny_dense_and_magnitude(real_data, store):
    dense = _by_name(run(RunSpec(method="dense", model="splade-tiny", suite="retrieval-slow-test"), store, progress=False))
    assert dense["ndcg@10"].n == 50 and dense["doc_nnz"].n == 803
    assert dense["ndcg@10"].value > 0.6 and dense["recall@100"].value > 0.9
    assert dense["mrr@10"].value <= dense["recall@100"].value
    pruned = _by_name(run(RunSpec(method="magnitude", model="splade-tiny", suite="retrieval-slow-test", sparsity=0.5), store, progress=False))
    assert pruned["doc_nnz"].value != dense["doc_nnz"].value  # the representations moved with pruning
    assert pruned["flops"].value != dense["flops"].value


@pytest.mark.skipif(not os.environ.get("SPARSEBENCH_DATA_DIR"), reason="SPARSEBENCH_DATA_DIR is not set")
def test_calibrated_method_prunes_efficientnet_with_image_batches():
    """The calibration driver feeds image batches to block 0 (captured with a pre-hook)."""
    from sparsebench.calibration_data import CalibrationSpec
    from sparsebench.drivers import prune
    from sparsebench.masks import verify
    from sparsebench.models import load_model, resolve_model
    from sparsebench.patterns import Unstructured
    from sparsebench.pruning import PruneContext, methods

    loaded = load_model(resolve_model("efficientnet-lite0"))
    ctx = PruneContext(loaded, Unstructured(), 0.5, 0, CalibrationSpec("imagenet-samples", 4, 2, 0), progress=False)
    masks = prune(methods.get("wanda")(), ctx)
    layers = loaded.adapter.prunable_layers(loaded.model)
    report = verify({layer.name: layer.weight for layer in layers}, masks, Unstructured(), 0.5, [layer.name for layer in layers])
    assert report.ok and len(masks) == len(layers) == 31
