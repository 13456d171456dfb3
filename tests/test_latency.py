"""End-to-end latency on a tiny model: kernels swapped in, logits checked, rows stored with the run."""

from __future__ import annotations

import pytest
import torch

from sparsebench.drivers import prune
from sparsebench.kernel import kernels
from sparsebench.latency import E2EConfig, end_to_end_timings, swapped
from sparsebench.models import load_model, resolve_model
from sparsebench.patterns import Unstructured
from sparsebench.pruning import PruneContext, methods
from sparsebench.runner import run
from sparsebench.spec import RunSpec
from sparsebench.timing import TimingConfig

from .test_kernels import _Wrong

QUICK = E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, timing=TimingConfig(warmup=0, min_iters=2, min_time_s=0.0, threads=1))


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


def test_swap_really_uses_the_kernel(pruned):
    loaded, masks = pruned
    layers = loaded.adapter.prunable_layers(loaded.model)
    calls = []
    k = kernels.get("csr")()
    apply = k.apply
    k.apply = lambda p, x: calls.append(1) or apply(p, x)  # type: ignore[method-assign]
    with swapped(loaded.model, layers, k, masks), torch.no_grad():
        loaded.model(input_ids=torch.tensor([[1, 2, 3]]))
    assert len(calls) == len(layers)


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
    spec = RunSpec(method="magnitude", model=str(tiny_model_dirs["llama"]), suite="unit", sparsity=0.5, kernels=("dense", "csr", "bsr"))
    result = run(spec, store, progress=False)
    t = store.timings(run_id=result.run_id)
    assert sorted(t["kernel"].unique()) == ["bsr", "csr", "dense"]
    assert set(t["scope"]) == {"prefill", "decode"} and (t["status"] == "ok").all()
    assert t["speedup"].notna().all() and t["ideal_speedup"].notna().all()
