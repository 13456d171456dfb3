"""The runner's choice of driver, and methods as passive protocols driven with an explicit context."""

from __future__ import annotations

import pytest
import torch

from sparsebench.drivers import DRIVERS, AllLayers, BlockByBlock, KeepAll, LayerByLayer, choose_driver, prune
from sparsebench.errors import InvalidSpecError
from sparsebench.models import load_model, resolve_model
from sparsebench.patterns import NM, Block, Group, Unstructured
from sparsebench.pruning import Method, PruneContext, methods
from sparsebench.suites import suites

GLOBAL = Unstructured(Group.GLOBAL)


@pytest.mark.parametrize("method,params,pattern,driver", [
    ("dense", {}, Unstructured(), KeepAll),
    ("magnitude", {}, Unstructured(), LayerByLayer),
    ("magnitude", {}, NM(2, 4), LayerByLayer),
    ("random", {}, Block(4, 4), LayerByLayer),
    ("magnitude", {}, GLOBAL, AllLayers),
    ("random", {}, GLOBAL, AllLayers),
    ("wanda", {}, Unstructured(), BlockByBlock),
    ("sparsegpt", {}, NM(2, 4), BlockByBlock),
    ("owl", {}, Unstructured(), BlockByBlock),  # OWL's base, wanda, is driven
    ("owl", {"base": "magnitude"}, Unstructured(), LayerByLayer),
])
def test_the_driver_follows_the_pruning_methods_metadata(method, params, pattern, driver):
    assert type(choose_driver(methods.get(method).from_options(params), pattern)) is driver


@pytest.mark.parametrize("method,params,pattern,message", [
    ("wanda", {}, GLOBAL, "no driver compares scores across all layers for a method that needs calibration"),
    ("owl", {"base": "magnitude"}, GLOBAL, "no driver compares scores across all layers for a method that needs calibration"),
    ("sparsegpt", {}, Block(4, 4), "does not support pattern block4x4"),
    ("owl", {}, NM(2, 4), "does not support pattern 2:4"),
])
def test_combinations_no_driver_runs_are_one_line_errors(method, params, pattern, message):
    with pytest.raises(InvalidSpecError, match=message) as err:
        choose_driver(methods.get(method).from_options(params), pattern)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method", methods.list())
def test_at_most_one_driver_handles_each_method_and_group(method):
    meta = methods.get(method).meta
    for group in Group:
        assert sum(d.handles(meta, group) for d in DRIVERS) <= 1, (method, group)


def _contexts(obj: object, seen: set[int]) -> list[str]:
    """Attributes of ``obj`` (and the methods it holds) that hold a PruneContext."""
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    found = []
    for name, value in vars(obj).items():
        if isinstance(value, PruneContext):
            found.append(name)
        elif isinstance(value, Method):
            found += [f"{name}.{n}" for n in _contexts(value, seen)]
    return found


@pytest.mark.parametrize("method,params", [("random", {}), ("dsnot", {}), ("dsnot", {"initial": "sparsegpt"}), ("owl", {})])
def test_methods_keep_no_context(method, params, tiny_model_dirs):
    m = methods.get(method).from_options(params)
    seen_during: list[str] = []
    original = type(m.pruner).prune_layer

    def spy(self, ctx, layer):  # look while the driver is in the middle of the run
        seen_during.extend(_contexts(m, set()))
        return original(self, ctx, layer)

    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    calibration = suites.get("unit").calibration if m.meta.needs_calibration else None
    ctx = PruneContext(loaded, Unstructured(), 0.5, 0, calibration, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(m.pruner), "prune_layer", spy)
        masks = prune(m, ctx)
    assert masks and not seen_during and not _contexts(m, set())


def test_owl_prepares_layer_sparsities_and_its_base_prunes_with_them(tiny_model_dirs):
    owl = methods.get("owl").from_options({"base": "magnitude", "lam": "0.2"})
    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    ctx = PruneContext(loaded, Unstructured(), 0.5, 0, suites.get("unit").calibration, progress=False)
    prepared = owl.prepare(ctx)
    layers = loaded.adapter.prunable_layers(loaded.model)
    assert set(prepared.layer_sparsity) == {layer.name for layer in layers} and not ctx.layer_sparsity
    masks = prune(owl, ctx)
    for layer in layers:
        assert float((~masks[layer.name]).float().mean()) == pytest.approx(prepared.layer_sparsity[layer.name], abs=1e-3)
    assert len({round(s, 6) for s in prepared.layer_sparsity.values()}) > 1  # non-uniform


def test_global_driver_keeps_the_highest_scores_over_all_layers(tiny_model_dirs):
    loaded = load_model(resolve_model(str(tiny_model_dirs["gpt2"])))
    weights = {layer.name: layer.weight.detach().abs().clone() for layer in loaded.adapter.prunable_layers(loaded.model)}
    masks = prune(methods.get("magnitude")(), PruneContext(loaded, GLOBAL, 0.5, 0, None, progress=False))
    kept = torch.cat([weights[n][masks[n]] for n in weights])
    dropped = torch.cat([weights[n][~masks[n]] for n in weights])
    assert kept.min() >= dropped.max()
    per_layer = [float((~m).float().mean()) for m in masks.values()]
    assert max(per_layer) - min(per_layer) > 0.05  # layers end up with different sparsities
