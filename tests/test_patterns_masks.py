"""Patterns as types, the comparison group rule, the one mask-selection routine, and verification."""

from __future__ import annotations

import pytest
import torch

from sparsebench.errors import InvalidSpecError
from sparsebench.masks import block_valid, nm_valid, select_global, select_mask, verify
from sparsebench.patterns import NM, Block, Group, Unstructured, comparison_group, fits, parse_pattern, resolve_sparsity


@pytest.mark.parametrize("text,expected", [
    ("unstructured", Unstructured()), ("unstructured-global", Unstructured(Group.GLOBAL)),
    ("2:4", NM(2, 4)), (" 4:8 ", NM(4, 8)), ("1:3", NM(1, 3)), ("block4x4", Block(4, 4)), ("8x2", Block(8, 2)),
])
def test_parse_pattern(text, expected):
    assert parse_pattern(text) == expected
    assert parse_pattern(str(expected)) == expected


@pytest.mark.parametrize("pattern,text", [
    (Unstructured(), "unstructured"), (Unstructured(Group.GLOBAL), "unstructured-global"), (Unstructured("global"), "unstructured-global"),
    (NM(2, 4), "2:4"), (Block(4, 4), "block4x4"),
])
def test_pattern_strings_are_stable(pattern, text):
    # stored in databases and spec hashes: these spellings must never change
    assert str(pattern) == text
    assert hash(pattern) == hash(parse_pattern(text))


def test_unstructured_names_no_group_or_the_global_one():
    with pytest.raises(InvalidSpecError):
        Unstructured(Group.ROW)


@pytest.mark.parametrize("pattern,method_group,expected", [
    (Unstructured(), Group.ROW, Group.ROW), (Unstructured(), Group.LAYER, Group.LAYER),
    (Unstructured(Group.GLOBAL), Group.ROW, Group.GLOBAL), (Unstructured(Group.GLOBAL), Group.LAYER, Group.GLOBAL),
    (NM(2, 4), Group.ROW, Group.ROW), (Block(4, 4), Group.LAYER, Group.LAYER),
])
def test_comparison_group_is_the_patterns_else_the_methods(pattern, method_group, expected):
    assert comparison_group(pattern, method_group) is expected


@pytest.mark.parametrize("pattern,shape,ok", [
    (Unstructured(), (3, 5), True), (NM(2, 4), (3, 8), True), (NM(2, 4), (8, 6), False),
    (Block(4, 2), (8, 6), True), (Block(4, 2), (6, 6), False), (Block(4, 2), (8, 5), False),
])
def test_patterns_own_their_shape_rules(pattern, shape, ok):
    assert fits(pattern, shape) is ok
    if not ok:
        with pytest.raises(InvalidSpecError, match=str(pattern)):
            pattern.check_shape(shape)


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
    mask = select_mask(scores, Unstructured(), 0.5, group=Group.ROW)
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


def test_nm_and_block_need_divisible_shapes():
    with pytest.raises(InvalidSpecError):
        select_mask(torch.rand(2, 6), NM(2, 4), 0.5)
    with pytest.raises(InvalidSpecError):
        select_mask(torch.rand(6, 8), Block(4, 4), 0.5)


def test_group_matters_only_for_unstructured():
    scores = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    for pattern in (NM(2, 4), Block(4, 4)):
        assert torch.equal(select_mask(scores, pattern, 0.5, Group.ROW), select_mask(scores, pattern, 0.5, Group.LAYER))
    with pytest.raises(ValueError, match="spans layers"):
        select_mask(scores, Unstructured(), 0.5, Group.GLOBAL)


def test_select_global_hits_the_overall_target():
    scores = {"a": torch.arange(10.0).reshape(2, 5), "b": torch.arange(10.0, 30.0).reshape(4, 5)}
    masks = select_global(scores, 0.5)
    assert int(masks["a"].sum()) == 0 and int(masks["b"].sum()) == 15
    # the same rule as one layer holding every score
    both = torch.cat([scores["a"].flatten(), scores["b"].flatten()]).reshape(1, -1)
    assert torch.equal(torch.cat([masks["a"].flatten(), masks["b"].flatten()]), select_mask(both, Unstructured(), 0.5)[0])


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
