"""Vision and retrieval tasks end to end on tiny random models and generated data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparsebench.adapters import ModelAdapter
from sparsebench.calibration_data import CalibrationSpec, sample_calibration
from sparsebench.images import ImagePreprocess
from sparsebench.models import load_model, resolve_model
from sparsebench.runner import run
from sparsebench.spec import RunSpec
from sparsebench.suites import Suite, suites
from sparsebench.tasks.imagenet.data import load_image_set
from sparsebench.tasks.retrieval.data import load_retrieval_set

if "vision-unit" not in suites:
    suites.register("vision-unit", Suite(
        "vision-unit", "1", "tiny vision suite for unit tests",
        CalibrationSpec("imagenet-samples", nsamples=4, seqlen=2, seed=0),
        ("imagenet-samples",), {"imagenet-samples": {"batch_size": 64, "max_images": 96}},
        modality="image-classification",
    ))
if "retrieval-unit" not in suites:
    suites.register("retrieval-unit", Suite(
        "retrieval-unit", "1", "tiny retrieval suite for unit tests",
        CalibrationSpec("lambada-text", nsamples=2, seqlen=32, seed=0),
        ("beir-scifact",), {"beir-scifact": {"doc_max_length": 32, "query_max_length": 16, "batch_size": 4}},
        modality="masked-lm",
    ))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data dir with 1,000 generated images (one per fake wnid) and a 3-document BEIR set."""
    from PIL import Image

    root = tmp_path / "data"
    images = root / "imagenet-samples"
    images.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for i in range(1000):
        px = torch.randint(0, 256, (12, 16, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(px).save(images / f"n{i:08d}_class{i}.JPEG")
    beir = root / "beir" / "scifact"
    (beir / "qrels").mkdir(parents=True)
    corpus = [("d1", "Cats", "cats purr and sleep"), ("d2", "", "dogs bark loudly"), ("d3", "Fish", "fish swim in water")]
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in corpus))
    queries = [("q1", "do cats purr"), ("q2", "which animal barks"), ("q3", "an unjudged query")]
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": x}) + "\n" for i, x in queries))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n")
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(root))
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    load_image_set.cache_clear()
    load_retrieval_set.cache_clear()
    yield root
    load_image_set.cache_clear()
    load_retrieval_set.cache_clear()


@pytest.fixture(scope="module")
def tiny_convnext(tmp_path_factory) -> Path:
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor

    torch.manual_seed(0)
    cfg = ConvNextConfig(depths=[1, 1, 5, 1], hidden_sizes=[8, 16, 16, 16], num_labels=1000, image_size=32)
    path = tmp_path_factory.mktemp("tiny-convnext")
    ConvNextForImageClassification(cfg).save_pretrained(path)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_splade(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from sparsebench.models import models, resolve_weights

    tok = AutoTokenizer.from_pretrained(resolve_weights(models.get("splade-tiny")).path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    path = tmp_path_factory.mktemp("tiny-splade")
    BertForMaskedLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_adapter_spans_every_stage(tiny_convnext):
    loaded = load_model(resolve_model(str(tiny_convnext)))
    assert loaded.entry.kind == "image-classification" and loaded.adapter.include_conv
    blocks = loaded.adapter.blocks(loaded.model)
    assert len(blocks) == 8  # depths 1+1+5+1 across the four stage ModuleLists, in order
    assert [b.index for b in blocks] == list(range(8))
    assert {b.name.split(".layers.")[0] for b in blocks} == {f"convnext.encoder.stages.{i}" for i in range(4)}
    names = [layer.name for layer in loaded.adapter.prunable_layers(loaded.model)]
    assert not any("dwconv" in n for n in names)  # depthwise convolutions stay dense
    assert all(n.endswith(("pwconv1", "pwconv2")) for n in names)


def test_adapter_efficientnet_lite_convs():
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    adapter = ModelAdapter(include_conv=True)
    layers = adapter.prunable_layers(model)
    assert len(adapter.blocks(model)) == 16
    assert any(n.endswith("_expand_conv") for n in (layer.name for layer in layers))
    assert not any("_depthwise_conv" in layer.name for layer in layers)
    w = layers[1].module.weight
    assert layers[1].weight.shape == (w.shape[0], w[0].numel())  # conv seen as [out, in*kh*kw]
    from sparsebench.errors import SparsebenchError

    with pytest.raises(SparsebenchError, match="cannot find repeated blocks"):
        ModelAdapter().prunable_layers(model)  # without include_conv: no Linear layer inside its blocks


def test_image_calibration_batches(data_dir):
    proc = ImagePreprocess(24, 0.875, (0.5,) * 3, (0.5,) * 3)
    a = sample_calibration(CalibrationSpec("imagenet-samples", nsamples=3, seqlen=2, seed=1), proc)
    b = sample_calibration(CalibrationSpec("imagenet-samples", nsamples=3, seqlen=2, seed=1), proc)
    c = sample_calibration(CalibrationSpec("imagenet-samples", nsamples=3, seqlen=2, seed=2), proc)
    assert a.shape == (3, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    examples, _ = load_image_set("imagenet-samples")
    assert [e.label for e in examples[:3]] == [0, 1, 2] and examples[-1].label == 999


def test_image_set_needs_all_classes(data_dir):
    from sparsebench.errors import InvalidSpecError

    next((data_dir / "imagenet-samples").iterdir()).unlink()
    with pytest.raises(InvalidSpecError, match="999 classes"):
        load_image_set("imagenet-samples")


def test_vision_run_dense_and_magnitude(data_dir, tiny_convnext, store):
    dense = run(RunSpec(method="dense", model=str(tiny_convnext), suite="vision-unit"), store, progress=False)
    m = {x.name: x for x in dense.metrics}
    assert set(m) == {"top1", "top5", "top1_agreement"}
    assert m["top1_agreement"].value == 1.0 and m["top1"].n == 96
    assert m["top1"].value <= m["top5"].value
    assert len(m["top1"].items.ids) == 96 and m["top1"].items.binary and m["top1"].items.value() == m["top1"].value
    assert m["top1_agreement"].items.scores == (1.0,) * 96
    assert m["top1_agreement"].details["dense_reference"] == "computed"
    pruned = run(RunSpec(method="magnitude", model=str(tiny_convnext), suite="vision-unit", sparsity=0.5), store, progress=False)
    p = {x.name: x for x in pruned.metrics}
    assert p["top1_agreement"].details["dense_reference"] == "cache"
    assert p["top1_agreement"].details["dense_top1"] == pytest.approx(m["top1"].value)
    assert pruned.report.achieved_sparsity == pytest.approx(0.5, abs=0.01)
    df = store.results()
    assert set(df["metric"]) == {"top1", "top5", "top1_agreement"} and df["id"].nunique() == 2


def test_retrieval_run(data_dir, tiny_splade, store):
    res = run(RunSpec(method="dense", model=str(tiny_splade), suite="retrieval-unit"), store, progress=False)
    m = {x.name: x for x in res.metrics}
    assert set(m) == {"ndcg@10", "mrr@10", "recall@100", "query_nnz", "doc_nnz", "flops", "index_mb", "query_latency_ms"}
    assert m["ndcg@10"].n == 2  # q3 has no judgement
    assert len(m["ndcg@10"].items.ids) == 2 and "q3" not in m["ndcg@10"].items.ids  # per-query scores of the judged queries
    assert m["mrr@10"].items.ids == m["ndcg@10"].items.ids and m["query_nnz"].items is None
    assert 0.0 <= m["ndcg@10"].value <= 1.0 and 0.0 <= m["recall@100"].value <= 1.0
    assert m["doc_nnz"].n == 3 and m["doc_nnz"].value > 0
    assert 0 < m["flops"].value <= m["query_nnz"].value  # p_d(j) <= 1
    assert m["index_mb"].details["postings"] == round(m["doc_nnz"].value * 3)
    assert m["ndcg@10"].details["query_encoder"] == "splade"
    pruned = run(RunSpec(method="magnitude", model=str(tiny_splade), suite="retrieval-unit", sparsity=0.5), store, progress=False)
    assert {x.name for x in pruned.metrics} == set(m)


def test_retrieval_inference_free_queries(data_dir, tiny_splade, tmp_path, store):
    import shutil

    model = tmp_path / "inference-free"
    shutil.copytree(tiny_splade, model)
    (model / "idf.json").write_text(json.dumps({"cats": 3.0, "purr": 2.0, "animal": 1.0, "do": 0.5}))
    res = run(RunSpec(method="dense", model=str(model), suite="retrieval-unit"), store, progress=False)
    m = {x.name: x for x in res.metrics}
    assert m["ndcg@10"].details["query_encoder"] == "idf"
    # each query's non-zeros are its distinct word pieces that the idf table weights
    from transformers import AutoTokenizer

    tok, table = AutoTokenizer.from_pretrained(model), {"cats", "purr", "animal", "do"}
    expected = [len(set(tok.tokenize(q)) & table) for q in ("do cats purr", "which animal barks")]
    assert min(expected) >= 1
    assert m["query_nnz"].value == pytest.approx(sum(expected) / 2)


def test_a_gradient_method_on_an_image_model_is_refused_before_anything_loads(data_dir, tiny_convnext):
    from sparsebench.errors import InvalidSpecError
    from sparsebench.patterns import Unstructured
    from sparsebench.pruning import methods
    from sparsebench.runner import plan

    # structured (heads/channels) gradient methods are refused for image models by their pattern already
    names = [n for n in methods.list() if methods.get(n).meta.needs_gradients and Unstructured in methods.get(n).meta.patterns]
    assert "gblm" in names
    for name in names:
        with pytest.raises(InvalidSpecError, match=f"method '{name}' takes gradients of a language-modelling loss; .* is a image-classification"):
            plan(RunSpec(method=name, model=str(tiny_convnext), suite="vision-unit", sparsity=0.5))
