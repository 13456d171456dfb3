"""Patterns as types, the one mask-selection routine, and verification."""

from __future__ import annotations

import pytest
import torch

from sparsebench.errors import InvalidSpecError
from sparsebench.masks import block_valid, nm_valid, select_global, select_mask, verify
from sparsebench.patterns import NM, Block, Unstructured, parse_pattern, resolve_sparsity


@pytest.mark.parametrize("text,expected", [
    ("unstructured", Unstructured()), ("unstructured-global", Unstructured("global")),
    ("2:4", NM(2, 4)), (" 4:8 ", NM(4, 8)), ("1:3", NM(1, 3)), ("block4x4", Block(4, 4)), ("8x2", Block(8, 2)),
])
def test_parse_pattern(text, expected):
    assert parse_pattern(text) == expected
    assert parse_pattern(str(expected)) == expected


@pytest.mark.parametrize("text", ["5:4", "4:4", "0:4", "banana", "block0x4", "2:"])
def test_bad_patterns_are_rejected(text):
    with pytest.raises(InvalidSpecError):
        parse_pattern(text)


@pytest.mark.parametrize("pattern,sparsity,expected", [
    (Unstructured(), None, 0.5), (Unstructured(), 0.0, 0.0), (NM(2, 4), None, 0.5), (NM(1, 4), None, 0.75), (Block(2, 2), 0.9, 0.9),
])
def test_resolve_sparsity(pattern, sparsity, expected):
    assert resolve_sparsity(pattern, sparsity) == pytest.approx(expected)


@pytest.mark.parametrize("sparsity", [1.0, 1.2, -0.1])
def test_sparsity_out_of_range(sparsity):
    with pytest.raises(InvalidSpecError):
        resolve_sparsity(Unstructured(), sparsity)


def test_nm_with_conflicting_sparsity():
    with pytest.raises(InvalidSpecError):
        resolve_sparsity(NM(2, 4), 0.7)


def test_unstructured_layer_keeps_the_largest_exactly():
    scores = torch.tensor([[1.0, 5.0, 3.0, 2.0], [8.0, 0.5, 7.0, 4.0]])
    mask = select_mask(scores, Unstructured(), 0.5)
    assert mask.tolist() == [[False, True, False, False], [True, False, True, True]]


def test_row_group_prunes_each_row_equally():
    scores = torch.tensor([[1.0, 5.0, 3.0, 2.0], [8.0, 0.5, 7.0, 4.0]])
    mask = select_mask(scores, Unstructured(), 0.5, group="row")
    assert mask.tolist() == [[False, True, True, False], [True, False, True, False]]


def test_nm_keeps_top_n_of_every_group():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.1, 0.2, 0.4, 0.3]])
    mask = select_mask(scores, NM(2, 4), 0.5)
    assert mask.tolist() == [[True, False, True, False, False, False, True, True]]
    assert nm_valid(mask, NM(2, 4)) and not nm_valid(torch.ones(1, 8, dtype=torch.bool), NM(2, 4))


def test_block_prunes_whole_tiles():
    torch.manual_seed(0)
    scores = torch.rand(8, 8)
    scores[:4, :4] += 10  # the most important tile
    mask = select_mask(scores, Block(4, 4), 0.75)
    assert mask[:4, :4].all() and mask.sum() == 16 and block_valid(mask, Block(4, 4))


def test_nm_needs_divisible_inputs():
    with pytest.raises(InvalidSpecError):
        select_mask(torch.rand(2, 6), NM(2, 4), 0.5)


def test_select_global_hits_the_overall_target():
    scores = {"a": torch.arange(10.0).reshape(2, 5), "b": torch.arange(10.0, 30.0).reshape(4, 5)}
    masks = select_global(scores, 0.5)
    assert int(masks["a"].sum()) == 0 and int(masks["b"].sum()) == 15


def test_verify_reports_each_kind_of_problem():
    w = torch.randn(4, 8)
    mask = select_mask(w.abs(), NM(2, 4), 0.5)
    good = {"l": w * mask}
    assert verify(good, {"l": mask}, NM(2, 4), 0.5, ["l"]).ok
    # weights outside the mask not zeroed
    assert not verify({"l": w}, {"l": mask}, NM(2, 4), 0.5, ["l"]).ok
    # sparsity missed
    report = verify(good, {"l": mask}, Unstructured(), 0.7, ["l"])
    assert not report.ok and "achieved sparsity" in report.problems[0]
    # mask for a layer that is not targeted
    assert not verify(good, {"l": mask, "x": mask}, NM(2, 4), 0.5, ["l"]).ok
    # an N:M violation
    bad = good["l"].clone()
    bad[0, :4] = 1.0
    bad[0, 4:] = 0.0
    assert verify({"l": bad}, {}, NM(2, 4), 0.5, ["l"]).nm_valid is False
