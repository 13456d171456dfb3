"""Verification counts the zeros a method accounts for, apart from the weights' own exact zeros.

Dequantized checkpoints hold exact zeros before any pruning (the Q4_K_M Gemma 3 270M: 4.55%).
A dense baseline of such a model must achieve 0, and a 50% run 0.5, whichever own zeros
its mask keeps or removes.
"""

from __future__ import annotations

import sqlite3

import pytest
import torch

from sparsebench.cli import main
from sparsebench.masks import own_zeros, select_mask, verify
from sparsebench.patterns import NM, Block, Unstructured

OWN = 0.1  # fraction of the weights made exactly zero before pruning


def _with_own_zeros(shape=(16, 32), seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    w[torch.rand(shape, generator=g) < OWN] = 0.0
    return w


def test_own_zeros_names_only_layers_that_hold_zeros():
    w = _with_own_zeros()
    found = own_zeros({"z": w, "dense": torch.ones(4, 4)})
    assert set(found) == {"z"} and torch.equal(found["z"], w == 0)


def test_a_dense_model_with_own_zeros_achieves_zero():
    w = _with_own_zeros()
    own = own_zeros({"l": w})
    report = verify({"l": w}, {}, Unstructured(), 0.0, ["l"], own=own)
    assert report.ok and report.achieved_sparsity == 0.0
    assert report.own_sparsity == report.total_sparsity == pytest.approx(float((w == 0).float().mean()))
    assert 0.05 < report.own_sparsity < 0.15
    # counting every zero (no own zeros given) fails the dense target: the failure this fixes
    assert not verify({"l": w}, {}, Unstructured(), 0.0, ["l"]).ok


@pytest.mark.parametrize("scores", ["magnitude", "random"])
def test_a_half_mask_achieves_half_whichever_own_zeros_it_keeps(scores):
    w = _with_own_zeros()
    own = own_zeros({"l": w})
    s = w.abs() if scores == "magnitude" else torch.rand(w.shape, generator=torch.Generator().manual_seed(1))
    mask = select_mask(s, Unstructured(), 0.5)
    pruned = w * mask
    report = verify({"l": pruned}, {"l": mask}, Unstructured(), 0.5, ["l"], own=own)
    assert report.ok, report.problems
    assert report.achieved_sparsity == pytest.approx(0.5, abs=1 / w.numel())
    kept_own = int(((w == 0) & mask).sum())
    assert report.total_sparsity == pytest.approx(0.5 + kept_own / w.numel(), abs=1 / w.numel())
    if scores == "magnitude":  # the own zeros score lowest: the mask removes them all
        assert kept_own == 0
    else:  # a random mask keeps some, which all zeros together would count against it
        assert kept_own > 0 and not verify({"l": pruned}, {"l": mask}, Unstructured(), 0.5, ["l"]).ok


def test_zeros_a_method_adds_outside_its_mask_count():
    w = _with_own_zeros()
    own = own_zeros({"l": w})
    mask = select_mask(w.abs(), Unstructured(), 0.5)
    pruned = w * mask
    pruned[mask & (w != 0)] = 0.0  # a method that also zeroes every weight it claims to keep
    report = verify({"l": pruned}, {"l": mask}, Unstructured(), 0.5, ["l"], own=own)
    assert report.achieved_sparsity == pytest.approx(1.0) and not report.ok


@pytest.mark.parametrize("pattern", [NM(2, 4), Block(4, 4)])
def test_structured_patterns_hold_with_own_zeros_in_kept_groups(pattern):
    w = _with_own_zeros()
    own = own_zeros({"l": w})
    mask = select_mask(torch.rand(w.shape, generator=torch.Generator().manual_seed(2)), pattern, 0.5)
    report = verify({"l": w * mask}, {"l": mask}, pattern, 0.5, ["l"], own=own)
    assert report.ok, report.problems
    assert report.achieved_sparsity == pytest.approx(0.5) and report.total_sparsity > 0.5


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_with_own_zeros(tiny_model_dirs, tmp_path_factory):
    """The tiny Llama with 10% of every prunable weight set to exactly zero (seed 0)."""
    from sparsebench.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in loaded.adapter.prunable_layers(loaded.model):
            layer.weight[torch.rand(layer.shape, generator=g) < OWN] = 0.0
    path = tmp_path_factory.mktemp("own-zeros") / "tiny-llama-own-zeros"
    loaded.model.save_pretrained(path)
    loaded.processor.save_pretrained(path)
    return path


def _stored(db):
    import json

    with sqlite3.connect(db) as c:
        rows = c.execute("select method, achieved_sparsity, provenance from runs order by id").fetchall()
    return {m: (a, json.loads(p)["mask_report"]) for m, a, p in rows}


def test_runs_on_a_model_with_own_zeros_store_the_method_sparsity(tiny_with_own_zeros, tmp_path, capsys):
    db = tmp_path / "r.db"
    for method, sparsity in (("dense", "0"), ("magnitude", "0.5"), ("random", "0.5")):
        with pytest.raises(SystemExit) as exc:
            main(["run", "--db", f"sqlite:///{db}", "--model", str(tiny_with_own_zeros), "--suite", "unit",
                  "--method", method, "--sparsity", sparsity, "--no-progress"])
        err = capsys.readouterr().err
        assert exc.value.code == 0, err
        assert "the weights' own exact zeros before pruning" in err
    runs = _stored(db)
    assert runs["dense"][0] == 0.0
    assert runs["magnitude"][0] == pytest.approx(0.5, abs=1e-3) and runs["random"][0] == pytest.approx(0.5, abs=1e-3)
    own = runs["dense"][1]["own_zeros"]
    assert 0.09 < own < 0.11 and runs["dense"][1]["total_zeros"] == own
    assert runs["magnitude"][1]["total_zeros"] == pytest.approx(0.5, abs=1e-3)  # its mask took the own zeros first
    assert runs["random"][1]["total_zeros"] == pytest.approx(0.5 + 0.5 * own, abs=0.01)  # and random kept about half
