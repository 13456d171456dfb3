"""End-to-end latency on a tiny model: kernels swapped in, logits checked, rows stored with the run."""

from __future__ import annotations

import re

import copy

import pytest
import torch

from sparsebench.drivers import prune
from sparsebench.kernel import SparseLinear, kernels
from sparsebench.latency import E2EConfig, end_to_end_timings, swapped
from sparsebench.models import load_model, resolve_model
from sparsebench.patterns import Unstructured
from sparsebench.pruning import PruneContext, methods
from sparsebench.runner import run
from sparsebench.spec import RunSpec
from sparsebench.timing import TimingConfig

from .test_kernels import _Wrong

FAST = TimingConfig(warmup=0, min_iters=2, min_time_s=0.0, threads=1, cache="hot", evict_bytes=2**20)
QUICK = E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, rounds=2, timing=FAST, choice_timing=FAST)


@pytest.fixture
def pruned(tiny_model_dirs):
    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    masks = prune(methods.get("magnitude")(), PruneContext(loaded, Unstructured(), 0.5, 0, None, progress=False))
    return loaded, masks


def test_rows_per_kernel_and_modules_restored(pruned):
    loaded, masks = pruned
    before = [type(m) for m in loaded.model.modules()]
    rows = end_to_end_timings(loaded, masks, ["csr", "bsr", "semi_structured"], Unstructured(), 0.5, progress=False, config=QUICK)
    assert [type(m) for m in loaded.model.modules()] == before
    by = {(r["kernel"], r["scope"]): r for r in rows}
    assert set(by) == {(k, s) for k in ("dense", "csr", "bsr", "semi_structured") for s in ("prefill", "decode")}
    for k in ("dense", "csr", "bsr"):
        for s in ("prefill", "decode"):
            r = by[k, s]
            assert r["status"] == "ok", r["reason"]
            assert r["median_s"] > 0 and r["dense_median_s"] == by["dense", s]["median_s"]
            assert r["max_abs_error"] <= r["details"]["logits_atol"] + r["details"]["logits_rtol"] * 100
            assert 1.0 < r["ideal_speedup"] < 2.0  # the LM head is not pruned
    assert by["dense", "decode"]["details"]["tokens_per_s"] == pytest.approx(1 / by["dense", "decode"]["median_s"])
    assert by["semi_structured", "prefill"]["status"] == "unsupported" and "CUDA" in by["semi_structured", "prefill"]["reason"]
    assert all(r["details"]["cache"] == "hot" for r in rows)
    assert by["dense", "decode"]["details"]["bytes_bound"] == 1.0
    assert by["dense", "decode"]["iterations"] >= 2 * QUICK.rounds  # one timed call per decoded token, in every round
    assert all(r["details"]["rounds"] == QUICK.rounds for r in rows if r["status"] == "ok")


def _recording_measure(monkeypatch, module, seen):
    """Patch ``module.measure`` to note what each decode measurement ran: the decoder's model and the kernel swapped in."""
    real = module.measure

    def measure(fn, config, device, setup=None, evictor=None):
        if setup is not None:
            model = setup.__self__.model
            seen.append((id(model), next((m.kernel.name for m in model.modules() if isinstance(m, SparseLinear)), None)))
        return real(fn, config, device, setup=setup, evictor=evictor)

    monkeypatch.setattr(module, "measure", measure)


def test_kernels_are_measured_in_interleaved_rounds_and_pooled(pruned, monkeypatch):
    import sparsebench.latency as latency

    loaded, masks = pruned
    seen: list = []
    _recording_measure(monkeypatch, latency, seen)
    config = E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, rounds=3, timing=FAST, choice_timing=FAST)
    rows = end_to_end_timings(loaded, masks, ["csr"], Unstructured(), 0.5, progress=False, config=config)
    assert [k for _, k in seen] == ["dense", "csr", "csr", "dense", "dense", "csr"]  # alternating order
    by = {(r["kernel"], r["scope"]): r for r in rows}
    assert by["csr", "prefill"]["iterations"] == 3 * FAST.min_iters  # every round's samples pooled
    assert by["csr", "prefill"]["dense_median_s"] == by["dense", "prefill"]["median_s"]


def test_the_shrunk_model_and_its_baseline_are_measured_in_interleaved_rounds(pruned, monkeypatch):
    import dataclasses

    import sparsebench.latency as latency
    from sparsebench.patterns import Depth

    loaded, _ = pruned
    smaller = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))
    seen: list = []
    _recording_measure(monkeypatch, latency, seen)
    config = E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, rounds=3, timing=FAST, choice_timing=FAST)
    rows = latency.shrunk_timings(loaded, smaller, Depth(), 0.25, progress=False, config=config)
    order = [model_id for model_id, _ in seen]
    assert order == [id(loaded.model), id(smaller.model), id(smaller.model), id(loaded.model), id(loaded.model), id(smaller.model)]
    by = {(r["kernel"], r["scope"]): r for r in rows}
    assert set(by) == {(k, s) for k in ("dense", "shrunk") for s in ("prefill", "decode")}
    assert by["shrunk", "decode"]["dense_median_s"] == by["dense", "decode"]["median_s"]
    assert all(r["iterations"] >= 3 * FAST.min_iters and r["details"]["rounds"] == 3 for r in rows)


def test_latency_rounds_must_be_positive():
    from sparsebench.errors import InvalidSpecError

    with pytest.raises(InvalidSpecError, match="rounds"):
        E2EConfig(rounds=0)


def test_cold_regime_is_recorded(pruned):
    loaded, masks = pruned
    rows = end_to_end_timings(loaded, masks, ["csr"], Unstructured(), 0.5, progress=False, config=QUICK, cache="cold")
    assert {r["details"]["cache"] for r in rows} == {"cold"}
    assert all(r["details"]["evict_bytes"] == 2**20 for r in rows if r["status"] == "ok")


def test_auto_picks_a_measured_kernel_per_shape_and_records_it(pruned):
    loaded, masks = pruned
    shapes = {f"{o}x{i}" for o, i in (tuple(layer.weight.shape) for layer in loaded.adapter.prunable_layers(loaded.model))}
    rows = end_to_end_timings(loaded, masks, ["auto"], Unstructured(), 0.5, progress=False, config=QUICK)
    auto = {r["scope"]: r for r in rows if r["kernel"] == "auto"}
    assert set(auto) == {"prefill", "decode"}
    for scope, tokens in (("prefill", 16), ("decode", 1)):
        r = auto[scope]
        assert r["status"] == "ok", r["reason"]
        choice = r["details"]["choice"]
        assert set(choice) == shapes and r["details"]["choice_tokens"] == tokens
        for c in choice.values():
            speedups = {k: v for k, v in c["measured"].items() if isinstance(v, float)}
            assert c["kernel"] in speedups and "dense" in speedups and "semi_structured" not in c["measured"]
            assert c["speedup"] == max(speedups.values())  # the fastest measured kernel wins


def test_bfloat16_timings_on_a_copy(pruned):
    loaded, masks = pruned
    rows = end_to_end_timings(loaded, masks, ["csr", "bitmap"], Unstructured(), 0.5, progress=False, config=QUICK, dtype=torch.bfloat16)
    assert next(loaded.model.parameters()).dtype == torch.float32  # the loaded model is untouched
    by = {(r["kernel"], r["scope"]): r for r in rows}
    assert all(r["dtype"] == "bfloat16" for r in rows)
    assert by["csr", "prefill"]["status"] == "unsupported" and "16-bit" in by["csr", "prefill"]["reason"]
    assert by["bitmap", "decode"]["status"] == "ok", by["bitmap", "decode"]["reason"]


def test_swap_really_uses_the_kernel(pruned):
    loaded, masks = pruned
    layers = loaded.adapter.prunable_layers(loaded.model)
    calls = []
    k = kernels.get("csr")()
    apply = k.apply
    k.apply = lambda p, x: calls.append(1) or apply(p, x)  # type: ignore[method-assign]
    with swapped(loaded.model, layers, lambda layer: k, masks) as swap, torch.no_grad():
        loaded.model(input_ids=torch.tensor([[1, 2, 3]]))
    assert len(calls) == len(layers)
    assert swap.dense_bytes == sum(layer.weight.numel() * 4 for layer in layers)
    assert 0 < swap.packed_bytes == sum(k.packed_bytes(k.pack(layer.weight.detach(), masks[layer.name])) for layer in layers)


def test_wrong_kernel_fails_the_logits_check(pruned):
    loaded, masks = pruned
    kernels.register("wrong", _Wrong)
    try:
        rows = end_to_end_timings(loaded, masks, ["wrong"], Unstructured(), 0.5, progress=False, config=QUICK)
    finally:
        kernels.unregister("wrong")
    wrong = [r for r in rows if r["kernel"] == "wrong"]
    assert len(wrong) == 2 and all(r["status"] == "failed" and "logits differ" in r["reason"] and r["median_s"] is None for r in wrong)


def test_run_stores_end_to_end_records(tiny_model_dirs, store, monkeypatch):
    import sparsebench.latency as latency

    monkeypatch.setattr(latency, "E2EConfig", lambda: QUICK)  # what the runner gets by default
    spec = RunSpec(method="magnitude", model=str(tiny_model_dirs["llama"]), suite="unit", sparsity=0.5, kernels=("dense", "csr", "auto"),
                   cache="hot")
    result = run(spec, store, progress=False)
    t = store.timings(run_id=result.run_id)
    assert sorted(t["kernel"].unique()) == ["auto", "csr", "dense"]
    assert (t["details"].map(lambda d: d["cache"]) == "hot").all()
    assert result.record.identity.cache == "hot"
    assert set(t["scope"]) == {"prefill", "decode"} and (t["status"] == "ok").all()
    assert t["speedup"].notna().all() and t["ideal_speedup"].notna().all()
    from sparsebench.results import latency as latency_view
    from sparsebench.results import timing_range

    for r in t[t["kernel"] != "dense"].itertuples():  # the median ratio lies inside its p10-p90 range
        low, high = timing_range(t, r)
        assert low <= r.speedup <= high
    view = latency_view(t)
    assert len(view) == 6 and (view.loc[view["kernel"] == "dense", "speedup [p10-p90]"] == "1.00× (reference)").all()
    assert view.loc[view["kernel"] == "csr", "speedup [p10-p90]"].str.fullmatch(r"\d+\.\d\d× \[\d+\.\d\d, \d+\.\d\d\]").all()


def test_run_prints_each_speedup_with_its_range(tiny_model_dirs, store, monkeypatch, capsys):
    import sparsebench.latency as latency
    from sparsebench.cli import _print_compact

    monkeypatch.setattr(latency, "E2EConfig", lambda: QUICK)
    monkeypatch.setenv("COLUMNS", "250")  # a table wider than the terminal wraps its cells
    spec = RunSpec(method="magnitude", model=str(tiny_model_dirs["llama"]), suite="unit", sparsity=0.5, kernels=("csr",))
    result = run(spec, store, progress=False)
    _print_compact(store, [result.run_id])
    out = capsys.readouterr().out
    assert "latency (speedup = dense median / median, [p10-p90 range]" in out
    assert len([line for line in out.splitlines() if " csr " in line and "×  [" not in line and re.search(r"× \[[\d.]+, [\d.]+\]", line)]) == 2


def test_plan_accepts_auto_and_checks_the_timing_options(tiny_model_dirs):
    from sparsebench.errors import SparsebenchError
    from sparsebench.runner import plan

    model = str(tiny_model_dirs["llama"])
    assert plan(RunSpec(model=model, suite="unit", kernels=("auto", "csr"))).spec.kernels == ("auto", "csr")
    for bad in (dict(kernels=("autox",)), dict(kernels=("auto",), cache="warm"), dict(kernels=("auto",), latency_dtype="int8")):
        with pytest.raises(SparsebenchError):  # one-line errors: unknown name / invalid spec
            plan(RunSpec(model=model, suite="unit", **bad))


def test_cache_regime_and_latency_dtype_change_the_spec_hash_only_with_kernels():
    from sparsebench.errors import InvalidSpecError
    from sparsebench.spec import Identity, SuiteIdentity, spec_hash

    base = dict(method="m", params={}, method_source="0" * 64, model="x", model_revision="r", pattern="unstructured",
                sparsity=0.5, suite=SuiteIdentity("s", "1", "synthetic"), tasks=("t",), seed=0)
    with pytest.raises(InvalidSpecError):  # no kernels timed: the regime is not part of the identity
        Identity(**base, cache="hot")
    timed = {**base, "kernels": ("csr",), "hardware": "cpu"}
    hashes = {spec_hash(Identity(**timed, cache=c, latency_dtype=d)) for c in ("cold", "hot", None) for d in (None, "bfloat16")}
    assert len(hashes) == 6
