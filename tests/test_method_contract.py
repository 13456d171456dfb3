"""Contract tests run for every registered method (a new method gets them for free)."""

from __future__ import annotations

import pytest
import torch

from sparsebench.masks import nm_valid
from sparsebench.method import PruneContext, methods
from sparsebench.models import load_model, resolve_model
from sparsebench.patterns import NM, Unstructured
from sparsebench.suites import suites

METHODS = methods.list()
PRUNING = [m for m in METHODS if methods.get(m).meta.prunes]


def _prune(model_dir, method: str, pattern, sparsity: float, seed: int = 0):
    loaded = load_model(resolve_model(str(model_dir)))
    cls = methods.get(method)
    calib = suites.get("unit").calibration if cls.meta.needs_calibration else None
    before = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    masks = cls().prune(PruneContext(loaded, pattern, sparsity, seed, calib, progress=False))
    return loaded, masks, before


def _patterns(method: str):
    out = []
    for p in (Unstructured(), NM(2, 4)):
        if isinstance(p, methods.get(method).meta.patterns):
            out.append(p)
    return out


@pytest.mark.parametrize("method", PRUNING)
def test_target_sparsity_met_and_nm_valid(method, tiny_model_dir):
    for pattern in _patterns(method):
        sparsity = pattern.implied_sparsity or 0.5
        loaded, masks, _ = _prune(tiny_model_dir, method, pattern, sparsity)
        layers = loaded.adapter.prunable_layers(loaded.model)
        zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
        total = sum(layer.weight.numel() for layer in layers)
        assert abs(zeros / total - sparsity) < 0.01, (method, pattern, zeros / total)
        for layer in layers:
            if isinstance(pattern, NM):
                assert nm_valid(layer.weight != 0, pattern), (method, layer.name)
            if layer.name in masks:
                assert not bool((~masks[layer.name] & (layer.weight != 0)).any())


@pytest.mark.parametrize("method", PRUNING)
def test_same_seed_same_mask(method, tiny_model_dirs):
    a = _prune(tiny_model_dirs["llama"], method, Unstructured(), 0.5, seed=1)[1]
    b = _prune(tiny_model_dirs["llama"], method, Unstructured(), 0.5, seed=1)[1]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("method", METHODS)
def test_only_targeted_layers_change(method, tiny_model_dir):
    loaded, _, before = _prune(tiny_model_dir, method, Unstructured(), 0.5)
    targeted = {id(layer.module.weight) for layer in loaded.adapter.prunable_layers(loaded.model)}
    for name, p in loaded.model.named_parameters():
        if id(p) not in targeted:
            assert torch.equal(p, before[name]), f"{method} changed untargeted {name}"


def test_dense_leaves_perplexity_unchanged(tiny_model_dirs):
    model_dir = tiny_model_dirs["llama"]
    task = suites.get("unit").make_task("lambada-ppl")
    ref = task.evaluate(load_model(resolve_model(str(model_dir))), progress=False)[0].value
    loaded, masks, _ = _prune(model_dir, "dense", Unstructured(), 0.0)
    assert masks == {}
    assert task.evaluate(loaded, progress=False)[0].value == ref
