"""The identity of a result: the spec hash covers the method's source, and no process state."""

from __future__ import annotations

import textwrap

import pytest
import torch

from sparsebench.contract import load_method_source
from sparsebench.errors import InvalidSpecError
from sparsebench.pruning import methods
from sparsebench.models import resolve_weights
from sparsebench.runner import identity_of, plan
from sparsebench.source_hash import method_source_files, method_source_hash
from sparsebench.spec import Identity, RunSpec, SuiteIdentity, spec_hash

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass

    from sparsebench.pruning import methods
    from sparsebench.methods.magnitude import Magnitude


    @dataclass(frozen=True)
    class EditedParams:
        base: str = "random"


    @methods.register("{name}")
    class Edited(Magnitude):
        Params = EditedParams
        # version 1
''')


@pytest.fixture
def plugin(tmp_path):
    """A method registered from a temporary file (as `check-method path.py` loads one)."""
    name = f"edited-{tmp_path.name[-8:].replace('_', '-').lower()}"
    path = tmp_path / "edited_method.py"
    path.write_text(PLUGIN.format(name=name))
    (registered,) = load_method_source(str(path))
    yield registered, path
    methods.unregister(registered)


def _identity(method: str, model: str, **kw) -> Identity:
    p = plan(RunSpec(method=method, model=model, suite="unit", **kw))
    return identity_of(p, resolve_weights(p.model).revision)


def test_editing_a_methods_source_changes_the_spec_hash(plugin, tiny_model_dirs):
    name, path = plugin
    before = spec_hash(_identity(name, str(tiny_model_dirs["llama"])))
    assert spec_hash(_identity(name, str(tiny_model_dirs["llama"]))) == before  # deterministic
    path.write_text(path.read_text().replace("# version 1", "# version 2: a fix"))
    after = spec_hash(_identity(name, str(tiny_model_dirs["llama"])))
    assert after != before


def test_methods_named_by_a_parameter_or_derived_from_are_part_of_the_source(plugin):
    name, _ = plugin
    files = method_source_files(name, {"base": "random"})
    assert {"sparsebench.methods.random", "sparsebench.methods.magnitude"} <= set(files)  # named, and derived from
    assert "sparsebench.methods.wanda" not in files
    assert method_source_hash(name, {"base": "random"}) != method_source_hash(name, {"base": "wanda"})


def test_owl_and_dsnot_include_the_methods_they_run():
    owl = method_source_files("owl", {"base": "magnitude", "m": 5.0, "lam": 0.08})
    assert {"sparsebench.methods.owl", "sparsebench.methods.magnitude", "sparsebench.methods.wanda"} <= set(owl)
    dsnot = method_source_files("dsnot", {"initial": "sparsegpt"})
    assert {"sparsebench.methods.dsnot", "sparsebench.methods.sparsegpt", "sparsebench.methods.wanda"} <= set(dsnot)
    assert set(method_source_files("magnitude", {})) == {"sparsebench.methods.magnitude"}
    assert not any(m.startswith("sparsebench.") and ".methods." not in m for m in owl)  # not the framework


def test_the_thread_count_is_not_part_of_the_spec_hash(tiny_model_dirs):
    model = str(tiny_model_dirs["llama"])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = spec_hash(_identity("magnitude", model, kernels=("dense", "csr"), threads=1))
        torch.set_num_threads(2)
        two = spec_hash(_identity("magnitude", model, kernels=("dense", "csr"), threads=2))
    finally:
        torch.set_num_threads(before)
    assert one == two


def test_the_run_stores_what_the_sweep_predicts_and_threads_go_to_provenance(tiny_model_dirs, store, monkeypatch):
    """A kernel-timing run at 1 thread stores the hash a 2-thread process predicts for it."""
    import sparsebench.latency as latency
    from sparsebench.grid import parse_grid
    from sparsebench.runner import run
    from sparsebench.sweep import expand
    from sparsebench.timing import TimingConfig

    quick = latency.E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, rounds=1, timing=TimingConfig(warmup=0, min_iters=2, min_time_s=0.0))
    monkeypatch.setattr(latency, "E2EConfig", lambda: quick)  # what the runner gets by default
    model = str(tiny_model_dirs["llama"])
    grid = parse_grid({"models": [model], "methods": ["magnitude"], "suites": ["unit"], "kernels": ["dense"], "resources": {"cpus": 1}})
    (planned,) = expand(grid)
    assert planned.job.spec.threads == 1
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = run(planned.job.spec, store, progress=False)
        assert torch.get_num_threads() == 2  # the run's thread count is restored afterwards
    finally:
        torch.set_num_threads(before)
    row = store.runs().iloc[0]
    assert result.spec_hash == planned.job.key == row["spec_hash"]
    assert row["provenance"]["threads"] == 1 and "threads" not in row["hardware"]


def test_identity_rejects_what_it_cannot_hash():
    base = dict(method="m", params={}, method_source="s", model="x", model_revision="r", pattern="unstructured", sparsity=0.5,
                suite=SuiteIdentity("unit", "1", "synthetic"), tasks=("t",), seed=0)
    with pytest.raises(InvalidSpecError, match="seed must be an integer >= 0"):
        Identity(**{**base, "seed": -1})
    with pytest.raises(InvalidSpecError, match="parameter lam is not a finite number"):
        Identity(**{**base, "params": {"lam": float("nan")}})
    with pytest.raises(InvalidSpecError, match="needs the hardware"):
        Identity(**{**base, "kernels": ("csr",)})
    with pytest.raises(InvalidSpecError, match="seed must be"):
        RunSpec(seed=-1)
    with pytest.raises(InvalidSpecError, match="threads must be"):
        RunSpec(threads=0)
    ident = Identity(**base)
    assert Identity.from_payload(ident.payload()) == ident
    assert spec_hash(Identity(**{**base, "tasks": ("b", "a")})) == spec_hash(Identity(**{**base, "tasks": ("a", "b")}))


@pytest.mark.gpu
def test_a_cuda_kernel_timing_run_stores_the_hash_the_sweep_predicts(tiny_model_dirs, store, monkeypatch):
    import sparsebench.latency as latency
    from sparsebench.grid import parse_grid
    from sparsebench.runner import run
    from sparsebench.sweep import expand
    from sparsebench.timing import TimingConfig

    quick = latency.E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, rounds=1, timing=TimingConfig(warmup=0, min_iters=2, min_time_s=0.0))
    monkeypatch.setattr(latency, "E2EConfig", lambda: quick)
    grid = parse_grid({"models": [str(tiny_model_dirs["llama"])], "methods": ["magnitude"], "suites": ["unit"], "kernels": ["dense"],
                       "device": "cuda"})
    (planned,) = expand(grid)
    result = run(planned.job.spec, store, progress=False)
    assert result.spec_hash == planned.job.key == store.runs().iloc[0]["spec_hash"]
    assert planned.identity.hardware == torch.cuda.get_device_name(0)
