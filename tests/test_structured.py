"""Structured targets: parsing, the one plan selector, the smaller model, the runner's record.

The per-method checks (verification, decoding, save/load round trip, same plan per seed) run for
every registered structured method in tests/test_method_contract.py; these test the shared parts.
"""

from __future__ import annotations

import pytest
import torch

from sparsebench.drivers import prune
from sparsebench.errors import InvalidSpecError, SparsebenchError
from sparsebench.models import load_model, resolve_model
from sparsebench.patterns import Channels, Depth, Heads, Unstructured, parse_pattern
from sparsebench.pruning import PruneContext, methods
from sparsebench.runner import plan, run
from sparsebench.spec import RunSpec
from sparsebench.structure import Geometry, UnitScores, select_plan
from sparsebench.structure_check import measure_before, verify_shrunk
from sparsebench.suites import suites

STRUCTURED = [m for m in methods.list() if methods.get(m).meta.structured]
SMOLLM = Geometry(blocks=30, heads=9, kv_heads=3, head_dim=64, channels=1536)


def test_structured_targets_parse_and_print():
    for text, cls in (("depth", Depth), ("Heads", Heads), (" channels ", Channels)):
        target = parse_pattern(text)
        assert isinstance(target, cls) and parse_pattern(str(target)) == target
    assert Depth() != Heads() and hash(Depth()) == hash(Depth())
    with pytest.raises(InvalidSpecError, match="depth"):
        parse_pattern("layers")


def test_depth_plan_removes_the_lowest_blocks():
    scores = torch.tensor([5.0, 1.0, 4.0, 0.5, 3.0] + [10.0] * 25)
    p = select_plan(Depth(), 0.1, UnitScores(blocks=scores), SMOLLM)
    assert p.removed_blocks == (1, 3, 4) and p.planned == pytest.approx(0.1)
    assert p.tolerance == pytest.approx(1 / 60 + 0.005)


def test_channel_plan_keeps_the_same_count_in_every_block():
    g = torch.Generator().manual_seed(0)
    scores = tuple(torch.rand(1536, generator=g) for _ in range(30))
    p = select_plan(Channels(), 0.3, UnitScores(channels=scores), SMOLLM)
    assert {len(k) for k in p.kept_channels} == {1536 - round(0.3 * 1536)}
    top = set(torch.argsort(scores[0], descending=True)[:len(p.kept_channels[0])].tolist())
    assert set(p.kept_channels[0]) == top


def test_head_plan_keeps_gqa_groups_consistent():
    g = torch.Generator().manual_seed(0)
    q = tuple(torch.rand(9, generator=g) for _ in range(30))
    kv = tuple(torch.zeros(3) for _ in range(30))
    for sparsity, (groups, per_group) in ((0.25, (3, 2)), (0.5, (3, 1)), (0.3, (2, 3))):  # ties keep more groups
        p = select_plan(Heads(), sparsity, UnitScores(heads=q, kv_heads=kv), SMOLLM)
        assert {len(k) for k in p.kept_kv_heads} == {groups}
        assert {len(k) for k in p.kept_heads} == {groups * per_group}
        for heads, kept_kv in zip(p.kept_heads, p.kept_kv_heads):
            assert sorted({h // 3 for h in heads}) == list(kept_kv)  # every kept head reads a kept KV head
            assert all(sum(h // 3 == grp for h in heads) == per_group for grp in kept_kv)
        assert abs(p.planned - sparsity) <= p.tolerance


def test_a_plan_must_leave_something():
    with pytest.raises(InvalidSpecError, match="leaves none"):
        select_plan(Depth(), 0.99, UnitScores(blocks=torch.ones(30)), SMOLLM)


def test_verification_catches_a_plan_the_model_does_not_match(tiny_model_dirs):
    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    before = measure_before(loaded.adapter, loaded.model, Channels())
    p = prune(methods.get("wanda-sp")(), PruneContext(loaded, Channels(), 0.5, 0, suites.get("unit").calibration, progress=False))
    logits = lambda m: loaded.adapter.logits(m, torch.tensor([[1, 2, 3]]))  # noqa: E731
    assert verify_shrunk(loaded.adapter, before, loaded.model, p, logits).ok
    wrong = type(p)(p.target, 0.25, p.planned, 0.01, kept_channels=p.kept_channels)
    report = verify_shrunk(loaded.adapter, before, loaded.model, wrong, logits)
    assert not report.ok and "targeted parameters" in report.problems[0]


@pytest.mark.parametrize("method", STRUCTURED)
def test_lm_eval_runs_on_the_shrunk_model(method, tiny_model_dirs):
    from sparsebench.task import tasks

    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    target = methods.get(method).meta.patterns[0]()
    before = sum(p.numel() for p in loaded.model.parameters())
    prune(methods.get(method)(), PruneContext(loaded, target, 0.5, 0, suites.get("unit").calibration, progress=False))
    assert sum(p.numel() for p in loaded.model.parameters()) < before
    rows = tasks.get("piqa").from_mapping({"limit": 2, "batch_size": 2}).evaluate(loaded, progress=False)
    assert rows and all(0.0 <= r.value <= 1.0 and r.n == 2 for r in rows)


def test_run_stores_parameters_flops_and_shrunk_latency(tiny_model_dirs, store):
    from sparsebench.kernel_choice import SHRUNK

    spec = RunSpec(method="shortgpt", model=str(tiny_model_dirs["llama"]), pattern=Depth(), sparsity=0.5, suite="unit",
                   kernels=(SHRUNK,))
    res = run(spec, store, progress=False)
    s = res.record.provenance["structure"]
    assert s["params_after"] < s["params_before"] and s["flops_per_token_after"] < s["flops_per_token_before"]
    assert s["targeted_after"] * 2 == s["targeted_before"] and s["plan"]["removed_blocks"] in ([0], [1])
    assert res.record.measured.achieved_sparsity == pytest.approx(0.5)
    rows = {(t.kernel, t.scope): t for t in res.record.timings}
    assert set(rows) == {("dense", "prefill"), ("dense", "decode"), (SHRUNK, "prefill"), (SHRUNK, "decode")}
    assert rows[(SHRUNK, "decode")].speedup == pytest.approx(rows[(SHRUNK, "decode")].dense_median_s / rows[(SHRUNK, "decode")].median_s)
    assert rows[(SHRUNK, "prefill")].shape["parameters"] == s["params_after"]
    assert store.runs()["pattern"].tolist() == ["depth"]


def test_structured_spec_errors_are_one_line_and_early(tiny_model_dirs):
    model = str(tiny_model_dirs["llama"])
    with pytest.raises(InvalidSpecError, match="does not support pattern depth"):
        plan(RunSpec(method="magnitude", model=model, pattern=Depth(), suite="unit"))
    with pytest.raises(InvalidSpecError, match="does not support pattern unstructured"):
        plan(RunSpec(method="shortgpt", model=model, pattern=Unstructured(), suite="unit"))
    with pytest.raises(InvalidSpecError, match="sparse kernels do not apply"):
        plan(RunSpec(method="shortgpt", model=model, pattern=Depth(), suite="unit", kernels=("csr",)))
    with pytest.raises(InvalidSpecError, match="structurally pruned"):
        plan(RunSpec(method="magnitude", model=model, suite="unit", kernels=("shrunk",)))


def test_heads_of_an_opt_model_are_refused_before_anything_is_stored(tiny_model_dirs, store):
    with pytest.raises(SparsebenchError, match="cannot be removed"):
        run(RunSpec(method="wanda-sp", model=str(tiny_model_dirs["opt"]), pattern=Heads(), suite="unit"), store, progress=False)
    assert store.runs().empty
