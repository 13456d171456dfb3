"""Fidelity of the calibration-based methods: closed-form answers, reconstruction error, real perplexity."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from sparsebench.adapters import PrunableLayer
from sparsebench.calibration import blockwise, capture_block_inputs, calibration_tokens, forward_each
from sparsebench.calibration_data import CalibrationSpec
from sparsebench.drivers import prune
from sparsebench.masks import nm_valid, select_mask
from sparsebench.methods.dsnot import dsnot_refine
from sparsebench.methods.owl import outlier_ratio, owl_sparsities
from sparsebench.methods.ria import ria_score
from sparsebench.methods.sparsegpt import add_to_hessian, sparsegpt_reconstruct
from sparsebench.methods.wanda import wanda_score
from sparsebench.models import load_model, resolve_model
from sparsebench.patterns import NM, Group, Unstructured
from sparsebench.pruning import PruneContext, methods
from sparsebench.suites import suites


def _linear(weight: list[list[float]]) -> PrunableLayer:
    w = torch.tensor(weight)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    return PrunableLayer("layer", lin)


def _wanda_mask(weight, tokens, pattern) -> torch.Tensor:
    layer = _linear(weight)
    wanda = methods.get("wanda")()
    ctx = PruneContext(None, pattern, 0.5, 0, None)  # type: ignore[arg-type]
    wanda.observe(ctx, layer, torch.tensor(tokens))
    return wanda.prune_layer(ctx, layer)


# ----------------------------------------------------------------------------- closed forms


def test_wanda_mask_equals_closed_form_per_row():
    # column norms ‖X_j‖₂ = (4, 1, 0.5, 2): one token per non-zero feature
    tokens = [[4.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 2.0]]
    weight = [[1.0, -2.0, 3.0, -4.0], [4.0, 3.0, -2.0, 1.0]]
    # scores: row 0 = (4, 2, 1.5, 8) -> keep inputs 0, 3; row 1 = (16, 3, 1, 2) -> keep 0, 1
    expected = torch.tensor([[True, False, False, True], [True, True, False, False]])
    assert torch.equal(_wanda_mask(weight, tokens, Unstructured()), expected)
    # magnitude alone would keep inputs 2, 3 of row 0: the activations change the answer
    assert not torch.equal(select_mask(torch.tensor(weight).abs(), Unstructured(), 0.5, Group.ROW), expected)


def test_wanda_nm_mask_equals_closed_form():
    tokens = [[1.0] * 8]  # all norms 1: the score is |W|
    weight = [[8.0, -7.0, 6.0, 5.0, 1.0, -2.0, 3.0, 4.0]]
    assert _wanda_mask(weight, tokens, NM(2, 4)).tolist() == [[True, True, False, False, False, False, True, True]]
    assert _wanda_mask(weight, tokens, Unstructured()).tolist() == [[True, True, True, True, False, False, False, False]]


def test_wanda_row_rows_keep_equal_counts():
    torch.manual_seed(0)
    mask = select_mask(wanda_score(torch.randn(16, 32), torch.rand(32)), Unstructured(), 0.5, Group.ROW)
    assert mask.sum(1).tolist() == [16] * 16


def test_ria_score_and_mask_equal_closed_form():
    # ‖X_j‖₂ = (16, 1), so ‖X_j‖₂^0.5 = (4, 1); column sums of |W| = (4, 6), row sums = (3, 7)
    weight = [[1.0, 2.0], [3.0, 4.0]]
    expected = torch.tensor([[(1 / 4 + 1 / 3) * 4, 2 / 6 + 2 / 3], [(3 / 4 + 3 / 7) * 4, 4 / 6 + 4 / 7]])
    assert torch.allclose(ria_score(torch.tensor(weight), torch.tensor([16.0, 1.0])), expected)
    layer = _linear(weight)
    ria = methods.get("ria")()
    ctx = PruneContext(None, Unstructured(), 0.5, 0, None)  # type: ignore[arg-type]
    ria.observe(ctx, layer, torch.tensor([[16.0, 0.0], [0.0, 1.0]]))
    mask = ria.prune_layer(ctx, layer)
    # the whole layer competes: the two input-0 weights win; magnitude would keep row 1 instead
    assert mask.tolist() == [[True, False], [True, False]]
    assert select_mask(torch.tensor(weight).abs(), Unstructured(), 0.5).tolist() == [[False, False], [True, True]]
    assert layer.weight.tolist() == [[1.0, 0.0], [3.0, 0.0]]


def test_owl_sparsities_closed_form():
    # ratios (0.1, 0.3, 0.2) scale to (0, 0.16, 0.08); density = scaled - 0.08 + 0.5
    got = owl_sparsities([0.1, 0.3, 0.2], 0.5, 0.08)
    assert got == pytest.approx([0.58, 0.42, 0.50])
    assert sum(got) / 3 == pytest.approx(0.5)
    assert outlier_ratio([torch.tensor([1.0, 1.0, 1.0, 13.0])], 3.0) == 0.25  # mean 4, one score above 12


def test_owl_keeps_the_overall_target_when_blocks_differ_in_size():
    # a CNN's blocks: the plain mean of (0.58, 0.42, 0.50) is 0.5, but weighted by 1:8:1 weights it would be 0.436
    sizes = [100, 800, 100]
    got = owl_sparsities([0.1, 0.3, 0.2], 0.5, 0.08, sizes)
    assert sum(s * n for s, n in zip(got, sizes)) / sum(sizes) == pytest.approx(0.5)
    assert got[0] - got[1] == pytest.approx(0.16) and got[0] - got[2] == pytest.approx(0.08)  # the spread is OWL's
    assert owl_sparsities([0.1, 0.3, 0.2], 0.5, 0.08, [7, 7, 7]) == pytest.approx([0.58, 0.42, 0.50])


# ----------------------------------------------------------------------------- reconstruction


def _correlated_inputs(tokens: int, features: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(features, features, generator=g) / features**0.5 + torch.eye(features)
    scale = torch.exp(torch.randn(features, generator=g))  # features of very different size
    return (torch.randn(tokens, features, generator=g) @ mix) * scale + 0.3


def _err(w: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> float:
    return float(torch.linalg.norm(x @ w.t() - x @ w2.t()))


@pytest.mark.parametrize("pattern", [Unstructured(), NM(2, 4), NM(4, 8)], ids=str)
def test_sparsegpt_reconstruction_beats_magnitude_and_wanda(pattern):
    torch.manual_seed(1)
    w = torch.randn(48, 256)
    x = _correlated_inputs(1024, 256)
    h, _ = add_to_hessian(None, 0, x)
    w_sgpt, keep = sparsegpt_reconstruct(w, h, 0.5, pattern if isinstance(pattern, NM) else None, blocksize=64, threshold="exact")
    assert torch.equal(w_sgpt == 0, ~keep | (w_sgpt == 0)) and bool((w_sgpt[~keep] == 0).all())
    assert abs(float((~keep).float().mean()) - 0.5) < 1e-6
    if isinstance(pattern, NM):
        assert nm_valid(keep, pattern)
    mag = w * select_mask(w.abs(), pattern, 0.5)
    wanda = w * select_mask(wanda_score(w, x.norm(dim=0)), pattern, 0.5, Group.ROW)
    e_sgpt, e_mag, e_wanda = _err(w, w_sgpt, x), _err(w, mag, x), _err(w, wanda, x)
    assert e_sgpt < e_wanda < e_mag, (e_sgpt, e_wanda, e_mag)


def test_sparsegpt_without_pruning_is_identity():
    w = torch.randn(8, 16)
    h, _ = add_to_hessian(None, 0, _correlated_inputs(64, 16))
    w2, keep = sparsegpt_reconstruct(w, h, 0.0, threshold="exact")
    assert bool(keep.all()) and torch.allclose(w2, w, atol=1e-5)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.7])
def test_sparsegpt_threshold_rules_count_per_block(sparsity):
    """reference: every saliency <= sorted[int(n*s)] of a tile goes (int(n*s) + 1 without ties); exact: round(n*s)."""
    torch.manual_seed(3)
    w, x = torch.randn(24, 96), _correlated_inputs(256, 96)
    h, _ = add_to_hessian(None, 0, x)
    n = 24 * 32  # one tile: every row x a block of 32 columns
    _, ref = sparsegpt_reconstruct(w, h, sparsity, blocksize=32)  # the default rule
    _, exact = sparsegpt_reconstruct(w, h, sparsity, blocksize=32, threshold="exact")
    for b in range(3):
        tile = slice(32 * b, 32 * (b + 1))
        assert int((~ref[:, tile]).sum()) == int(n * sparsity) + 1
        assert int((~exact[:, tile]).sum()) == round(n * sparsity)
    # the first tile is chosen before any update: the reference code's expression, written out
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(
        h + 0.01 * torch.mean(torch.diag(h)) * torch.eye(96))), upper=True)
    tmp = w[:, :32] ** 2 / torch.diag(u)[:32].reshape(1, -1) ** 2
    thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
    assert torch.equal(ref[:, :32], ~(tmp <= thresh))


@pytest.mark.parametrize("pattern", [Unstructured(), NM(2, 4)], ids=str)
def test_dsnot_shrinks_expected_error_at_the_same_budget(pattern):
    torch.manual_seed(2)
    w = torch.randn(32, 128)
    x = _correlated_inputs(512, 128)
    xbar = x.sum(0) / 4  # the reference scale: summed per sequence (4 sequences), averaged
    init = wanda_score(w, x.norm(dim=0))
    keep0 = select_mask(init, pattern, 0.5, Group.ROW)
    contrib = w * xbar
    nm = pattern if isinstance(pattern, NM) else None
    keep = dsnot_refine(keep0, contrib, init, contrib / x.var(0, unbiased=False), nm, 50, 0.1)
    err0 = (contrib * ~keep0).sum(1).abs()
    err1 = (contrib * ~keep).sum(1).abs()
    assert bool((err1 <= err0 + 1e-4).all()) and float(err1.mean()) < 0.5 * float(err0.mean())
    assert keep.sum(1).tolist() == keep0.sum(1).tolist()  # same budget in every row
    assert not torch.equal(keep, keep0)
    if nm:
        assert nm_valid(keep, nm)


# ----------------------------------------------------------------------------- the driver


def test_captured_inputs_reproduce_the_dense_forward(tiny_model_dir):
    """Block inputs captured once and chained through forward_each match the model's own hidden states."""
    loaded = load_model(resolve_model(str(tiny_model_dir)))
    ctx = PruneContext(loaded, Unstructured(), 0.5, 0, suites.get("unit").calibration, progress=False)
    tokens = calibration_tokens(ctx)
    model = loaded.model
    calls = {"head": 0, "later blocks": 0}
    head = model.get_output_embeddings()
    blocks = loaded.adapter.blocks(model)
    hooks = [head.register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1)),
             blocks[1].module.register_forward_hook(lambda *a: calls.__setitem__("later blocks", calls["later blocks"] + 1))]
    inputs = capture_block_inputs(ctx, tokens)
    for h in hooks:
        h.remove()
    assert calls == {"head": 0, "later blocks": 0}  # capture stops at block 0 without running the rest
    assert len(inputs.hidden) == tokens.shape[0]
    with torch.no_grad():
        ref = model(tokens[:1], output_hidden_states=True, use_cache=False).hidden_states
    h = inputs.hidden[0]
    assert torch.allclose(h, ref[0], atol=1e-5)
    for i, block in enumerate(blocks[:-1]):  # the last entry of hidden_states is after the final norm
        one = dataclasses.replace(inputs, hidden=[h])
        forward_each(block, one, advance=True)
        h = one.hidden[0]
        assert torch.allclose(h, ref[i + 1], atol=1e-4), f"block {i}"


@pytest.mark.parametrize("changes_weights", [True, False])
def test_driver_feeds_each_block_the_model_it_has_built(tiny_model_dir, changes_weights):
    """Each block's first layer sees exactly what the model, as changed by the earlier steps, feeds it."""
    loaded = load_model(resolve_model(str(tiny_model_dir)))
    ctx = PruneContext(loaded, Unstructured(), 0.5, 0, suites.get("unit").calibration, progress=False)
    tokens = calibration_tokens(ctx)
    firsts = [block.layers[0] for block in loaded.adapter.blocks(loaded.model)]
    seen: dict[str, list[torch.Tensor]] = {}

    def step(block) -> None:
        if changes_weights:
            for layer in block.layers:
                layer.set_weight(layer.weight * 0.5)

    blockwise(ctx, lambda layer, x: seen.setdefault(layer.name, []).append(x.clone()), step, tokens=tokens,
              changes_weights=changes_weights)
    replay: dict[str, list[torch.Tensor]] = {}
    hooks = [layer.module.register_forward_hook(lambda m, a, o, n=layer.name: replay.setdefault(n, []).append(a[0].clone()))
             for layer in firsts]
    with torch.no_grad():
        for i in range(tokens.shape[0]):
            loaded.model(tokens[i : i + 1], use_cache=False)
    for h in hooks:
        h.remove()
    for layer in firsts:
        assert len(seen[layer.name]) == tokens.shape[0]
        for got, want in zip(seen[layer.name], replay[layer.name]):
            assert torch.allclose(got.reshape(want.shape), want, atol=1e-4), layer.name


def test_gblm_gradient_term_is_wired(tiny_model_dirs):
    """With scale 0 GBLM is Wanda (up to a per-layer constant); with gradients its masks differ."""
    def masks(method, **params):
        loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
        cls = methods.get(method)
        m = cls(cls.Params(**params)) if params else cls()
        return prune(m, PruneContext(loaded, Unstructured(), 0.5, 0, suites.get("unit").calibration, progress=False))

    wanda, no_grad, gblm = masks("wanda"), masks("gblm", scale=0.0), masks("gblm")
    assert all(torch.equal(wanda[n], no_grad[n]) for n in wanda)
    assert any(not torch.equal(wanda[n], gblm[n]) for n in wanda)


@pytest.mark.gpu
def test_offload_matches_in_memory_pruning(tiny_model_dirs):
    """Model on the CPU, one block at a time on the GPU: the same masks as pruning on the CPU."""
    def prune(compute):
        loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
        ctx = PruneContext(loaded, Unstructured(), 0.5, 0, suites.get("unit").calibration, progress=False,
                           compute_device=compute)
        return loaded, prune(methods.get("sparsegpt")(), ctx)

    loaded, off = prune(torch.device("cuda"))
    assert next(loaded.model.parameters()).device.type == "cpu"
    _, cpu = prune(None)
    agree = sum(int((off[n] == cpu[n]).sum()) for n in cpu) / sum(m.numel() for m in cpu.values())
    assert agree > 0.99


# ----------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_smollm2_calibrated_methods_far_better_than_magnitude():
    """SmolLM2-135M at 50% unstructured: wanda, sparsegpt and ria perplexity far below magnitude's."""
    from sparsebench.suites import Suite

    calib = CalibrationSpec("lambada-text", nsamples=4, seqlen=256, seed=0)
    suite = Suite("fidelity", "1", "", calib, ("wikitext2",), {"wikitext2": {"seqlen": 512, "windows": 2}})
    task = suite.make_task("wikitext2")
    loaded = load_model(resolve_model("llama"))
    dense = copy.deepcopy(loaded.model.state_dict())
    ppl = {}
    for method in ("magnitude", "wanda", "sparsegpt", "ria"):
        loaded.model.load_state_dict(dense)
        cls = methods.get(method)
        prune(cls(), PruneContext(loaded, Unstructured(), 0.5, 0, calib if cls.meta.needs_calibration else None, progress=False))
        ppl[method] = task.evaluate(loaded, progress=False)[0].value
    assert ppl["wanda"] < 0.5 * ppl["magnitude"], ppl
    assert ppl["sparsegpt"] < 0.5 * ppl["magnitude"], ppl
    assert ppl["ria"] < 0.5 * ppl["magnitude"], ppl


@pytest.mark.slow
def test_wikitext2_ref_windows_and_wanda_block0_masks_equal_an_independent_implementation():
    """SmolLM2-135M under wikitext2-ref, calibrated offline on 8x512 windows of the WikiText-2
    validation text: the windows are the reference loader's rule written out, and the Wanda
    masks of block 0's seven linears are those of a plain implementation on the dense model."""
    import os
    import random
    from pathlib import Path

    suite = suites.get("wikitext2-ref").with_calibration("wikitext2-valid-tokenized:8x512")
    loaded = load_model(resolve_model("llama"))
    del loaded.model.model.layers[1:]  # block 0's masks depend on nothing after it: prune a one-block model
    loaded.model.config.num_hidden_layers = 1
    ctx = PruneContext(loaded, Unstructured(), 0.5, 0, suite.calibration, progress=False)
    # the reference loader: the text tokenized whole, random.seed(0), randint windows
    text = (Path(os.environ["SPARSEBENCH_DATA_DIR"]) / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    ids = loaded.processor(text, return_tensors="pt").input_ids
    random.seed(0)
    windows = []
    for _ in range(8):
        i = random.randint(0, ids.shape[1] - 512 - 1)
        windows.append(ids[:, i : i + 512])
    assert torch.equal(calibration_tokens(ctx), torch.cat(windows))
    # Wanda on block 0, written plainly: hooks on the dense model, ||X_j||_2, |W| * ||X||, half of each row
    block0 = loaded.model.model.layers[0]
    linears = {name: m for name, m in block0.named_modules() if isinstance(m, nn.Linear)}
    sq = {name: torch.zeros(m.in_features) for name, m in linears.items()}
    def accumulate(module, args, output, name):
        sq[name] += args[0].reshape(-1, module.in_features).float().pow(2).sum(0)

    hooks = [m.register_forward_hook(lambda m, a, o, name=name: accumulate(m, a, o, name)) for name, m in linears.items()]
    with torch.no_grad():
        for w in windows:
            loaded.model.model(w)  # the backbone: the LM head does not change block 0's inputs
    for h in hooks:
        h.remove()
    expected = {}
    for name, m in linears.items():
        metric = m.weight.detach().abs() * sq[name].sqrt()
        pruned = torch.sort(metric, dim=-1, stable=True)[1][:, : int(m.in_features * 0.5)]
        expected[name] = torch.ones_like(metric, dtype=torch.bool).scatter_(1, pruned, False)
    masks = prune(methods.get("wanda")(), ctx)
    assert len(expected) == 7
    for name, keep in expected.items():
        assert torch.equal(masks[f"model.layers.0.{name}"], keep), name
