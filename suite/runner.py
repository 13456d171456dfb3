"""The runner: one spec → prune → verify → evaluate → time kernels → one stored record.

Nothing is written until the end, and then in one transaction: a crash or Ctrl-C at any
point leaves the database as it was. Every check that needs no model (names, ranges,
patterns, the database itself) runs before anything heavy is loaded.
"""

from __future__ import annotations

import copy
import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from . import provenance
from .data import Resolved, resolve
from .drivers import choose_driver
from .errors import InvalidSpecError, VerificationError
from .masks import MaskReport, fingerprint, own_zeros, require, verify
from .models import LANGUAGE_MODEL_KINDS, ModelEntry, load_model, resolve_model, resolve_weights, transformers_progress
from .patterns import Structured, Unstructured, resolve_sparsity
from .pruning import Method, PruneContext, methods
from .record import RunRecord, build_record, measurements
from .source_hash import method_source_hash
from .spec import Identity, RunSpec, params_dict, spec_hash
from .store import Store
from .structure_check import StructureCheck
from .suite_file import load_suite
from .suites import Suite
from .task import Metric

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """A validated spec: resolved objects, ready to run."""

    spec: RunSpec
    method: Method
    suite: Suite
    tasks: tuple[str, ...]
    model: ModelEntry
    sparsity: float


@dataclass
class RunResult:
    spec_hash: str
    run_id: int | None
    skipped: bool
    record: RunRecord | None = None
    metrics: list[Metric] = field(default_factory=list)
    report: MaskReport | None = None


def plan(spec: RunSpec) -> Plan:
    """Validate ``spec`` without loading anything heavy; raise a one-line error if it is wrong."""
    cls = methods.get(spec.method)
    method = cls(spec.params)
    suite = load_suite(spec.suite)
    task_names = suite.task_list(spec.tasks)
    entry = resolve_model(spec.model)
    if entry.kind != suite.modality:
        raise InvalidSpecError(f"model {spec.model!r} is a {entry.kind} model; suite {suite.name!r} is for {suite.modality}")
    if not method.meta.prunes:  # the dense baseline: one record per model and suite
        spec = replace(spec, pattern=Unstructured(), sparsity=0.0)
        sparsity = 0.0
    else:
        sparsity = resolve_sparsity(spec.pattern, spec.sparsity)
        choose_driver(method, spec.pattern)  # the pattern is one the method supports, and a driver runs it
        if isinstance(spec.pattern, Structured) and entry.kind != "causal-lm":
            raise InvalidSpecError(f"structured targets shrink causal language models; {spec.model!r} is a {entry.kind} model")
        if method.meta.needs_gradients and entry.kind not in LANGUAGE_MODEL_KINDS:
            raise InvalidSpecError(f"method {cls.name!r} takes gradients of a language-modelling loss; {spec.model!r} is a {entry.kind} model")
    if spec.kernels:
        from .cache import check_regime
        from .kernel import kernels
        from .kernel_choice import AUTO, SHRUNK

        structured = isinstance(spec.pattern, Structured)
        if structured and spec.kernels != (SHRUNK,):
            raise InvalidSpecError(f"a {spec.pattern} run is timed as the smaller dense model against the unpruned one "
                                   f"(--latency); sparse kernels do not apply, got --kernels {','.join(spec.kernels)}")
        for k in spec.kernels:
            if k == SHRUNK and not structured:
                raise InvalidSpecError(f"{SHRUNK!r} times a structurally pruned model; {spec.pattern} runs time kernels (auto, dense, csr, ...)")
            if k not in (AUTO, SHRUNK):
                kernels.canonical(k)
        check_regime(spec.cache)
        if spec.latency_dtype not in (None, "float32", "bfloat16", "float16"):
            raise InvalidSpecError(f"latency dtype must be float32, bfloat16 or float16, got {spec.latency_dtype!r}")
    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidSpecError(f"device {spec.device!r} requested but CUDA is not available")
    if spec.offload and not spec.device.startswith("cuda"):
        raise InvalidSpecError(f"--offload moves one block at a time to a GPU; pass --device cuda (got {spec.device!r})")
    if spec.offload and spec.kernels:
        raise InvalidSpecError("--offload evaluates on the CPU, so it cannot time kernels on the GPU; time them in a run without --offload")
    if spec.offload and not method.meta.needs_calibration:
        raise InvalidSpecError(f"--offload only applies to calibration methods; {cls.name!r} prunes in place without it")
    return Plan(replace(spec, method=cls.name, sparsity=sparsity), method, suite, task_names, entry, sparsity)


def identity_of(p: Plan, model_revision: str) -> Identity:
    """What the result of plan ``p`` is stored under (the hardware counts only when timing kernels)."""
    from .kernel import kernels
    from .kernel_choice import AUTO, SHRUNK

    spec = p.spec
    params = params_dict(p.method.params)
    timed = tuple(k if k in (AUTO, SHRUNK) else kernels.canonical(k) for k in spec.kernels)
    return Identity(
        method=spec.method, params=params, method_source=method_source_hash(spec.method, params), model=p.model.name,
        model_revision=model_revision, pattern=str(spec.pattern), sparsity=p.sparsity,
        suite=p.suite.identity(), tasks=p.tasks, seed=spec.seed, kernels=timed,
        hardware=provenance.hardware_name(spec.device) if timed else None,
        cache=spec.cache if timed else None, latency_dtype=spec.latency_dtype if timed else None,
    )


def _calibration(p: Plan):
    """The suite's calibration spec for methods that calibrate; the run's seed (``--seed``)
    offsets the suite's calibration seed (seed 0 samples exactly what the suite says)."""
    c = p.suite.calibration
    return replace(c, seed=c.seed + p.spec.seed) if p.method.meta.needs_calibration else None


def data_sources(p: Plan) -> dict[str, Resolved]:
    """Where each dataset the run reads resolves from (calibration text, task texts), found
    before the model is loaded so that missing data fails first; one-line error otherwise."""
    from .tasks.imagenet.data import is_image_asset

    names = [t for name in p.tasks for t in p.suite.make_task(name).datasets()]
    calibration = _calibration(p)
    if calibration is not None and not is_image_asset(calibration.dataset):
        names.insert(0, calibration.dataset)
    return {name: resolve(name) for name in dict.fromkeys(names)}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (None: leave torch's setting alone), restored afterwards."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def describe(p: Plan, identity: Identity) -> str:
    """One line saying what plan ``p`` runs."""
    s = p.spec
    params = "".join(f" {k}={v}" for k, v in identity.params.items())
    kernels = f", timing {','.join(identity.kernels)} on {identity.hardware}" if identity.kernels else ""
    return (f"{s.method}{params} on {p.model.name} (revision {identity.model_revision[:16]}), {p.sparsity:.0%} {s.pattern}, "
            f"suite {identity.suite.name} v{identity.suite.version}: {', '.join(p.tasks)}; seed {s.seed}{kernels}")


def run(
    spec: RunSpec,
    store: Store,
    *,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = lambda s: log.info(s),
) -> RunResult:
    """Run ``spec`` end to end and store one record (skipped if already stored, unless ``force``)."""
    p = plan(spec)
    spec = p.spec
    weights = resolve_weights(p.model)
    identity = identity_of(p, weights.revision)
    h = spec_hash(identity)
    if not force and (old := store.has_run(h)) is not None:
        echo(f"already stored as run {old.id} (spec {h[:12]}); use --force to run again")
        return RunResult(h, old.id, skipped=True)
    echo(f"suite {identity.suite.name} v{identity.suite.version} (settings {identity.suite.settings[:12]})")
    sources = data_sources(p)
    with torch_threads(spec.threads):
        record, metrics, report = _execute(p, identity, weights, sources, progress, echo)
    run_id = store.write_run(record, replace=force)
    return RunResult(h, run_id, False, record, metrics, report)


def _execute(p: Plan, identity: Identity, weights: Resolved, sources: dict[str, Resolved], progress: bool,
             echo: Callable[[str], None]) -> tuple[RunRecord, list[Metric], MaskReport | None]:
    """Load, prune, verify, evaluate and time; the record of it (nothing is stored here)."""
    spec = p.spec
    device = torch.device(spec.device)
    torch.manual_seed(spec.seed)
    echo(f"loading {p.model.name} from {weights.source.describe()} ...")
    with transformers_progress(progress):
        loaded = load_model(p.model, torch.device("cpu") if spec.offload else device)
    converted = provenance.converted_weights(weights)
    if converted is not None:
        echo(f"converted fp32 weights: {converted['path']} (sha256 {converted['sha256'][:12]})")
    adapter = loaded.adapter
    layers = adapter.prunable_layers(loaded.model)
    targeted = [layer.name for layer in layers]
    before = fingerprint(dict(adapter.iter_untargeted(loaded.model)))
    structured = isinstance(spec.pattern, Structured)
    own = {} if structured else own_zeros({layer.name: layer.weight for layer in layers})  # structured runs have no masks to credit

    ctx = PruneContext(loaded, spec.pattern, p.sparsity, spec.seed, _calibration(p), progress,
                       compute_device=device if spec.offload else None)
    if structured:
        dense = copy.deepcopy(loaded.model) if identity.kernels else None  # the latency baseline
        shrink_check = StructureCheck.before(loaded, spec.pattern)
    echo(f"pruning with {spec.method} to {p.sparsity:.0%} {spec.pattern} ...")
    t0 = time.perf_counter()
    outcome = choose_driver(p.method, spec.pattern).prune(p.method, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    prune_time = time.perf_counter() - t0

    if structured:
        structure = shrink_check.after(loaded, outcome, spec.method)
        achieved, report, masks = structure.achieved, None, {}
        echo(f"verified: removed {structure.achieved:.2%} of the {spec.pattern} parameters; "
             f"{structure.params_before:,} → {structure.params_after:,} parameters")
    else:
        masks = outcome
        weights_now = {layer.name: layer.weight.detach() for layer in adapter.prunable_layers(loaded.model)}
        report = require(verify(weights_now, masks, spec.pattern, p.sparsity, targeted, own=own))
        if fingerprint(dict(adapter.iter_untargeted(loaded.model))) != before:
            raise VerificationError(f"method {spec.method!r} changed parameters outside the targeted layers")
        achieved = report.achieved_sparsity
        echo(f"verified: {report.achieved_sparsity:.2%} sparsity over {len(targeted)} layers"
             + (f" (the weights' own exact zeros before pruning: {report.own_sparsity:.2%})" if own else ""))

    t0 = time.perf_counter()
    metrics: list[Metric] = []
    for name in p.tasks:
        metrics.extend(p.suite.make_task(name).evaluate(loaded, progress=progress))
    eval_time = time.perf_counter() - t0

    timings: list[dict[str, Any]] = []
    if identity.kernels and structured:
        from .latency import shrunk_timings

        timings = shrunk_timings(replace(loaded, model=dense), loaded, spec.pattern, p.sparsity, progress=progress, cache=spec.cache,
                                 dtype=getattr(torch, spec.latency_dtype) if spec.latency_dtype else None)
        del dense
    elif identity.kernels:
        from .latency import end_to_end_timings

        timings = end_to_end_timings(loaded, masks, identity.kernels, spec.pattern, p.sparsity, progress=progress, cache=spec.cache,
                                     dtype=getattr(torch, spec.latency_dtype) if spec.latency_dtype else None)

    prov = provenance.collect(device)
    prov["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if structured:
        prov["structure"] = {**structure.summary(), "plan": outcome.summary()}
    else:
        prov["mask_report"] = {"achieved": report.achieved_sparsity, "own_zeros": report.own_sparsity,
                               "total_zeros": report.total_sparsity, "nm_valid": report.nm_valid, "layers": len(report.layers)}
    prov["model_source"] = loaded.source
    prov["suite"] = {"source": p.suite.origin, "settings": p.suite.settings()}
    prov["datasets"] = {name: {"source": r.source.describe(), "revision": r.revision} for name, r in sources.items()}
    if converted is not None:
        prov["converted_weights"] = converted
    if spec.offload:  # pruned block by block on spec.device; the model, and so the tasks, stayed on the CPU
        prov["offload"] = {"compute_device": spec.device, "model_device": str(loaded.device)}
    calibration = str(ctx.calibration) if ctx.calibration else None
    measured = measurements(achieved, prune_time, eval_time, _peak_memory_mb(device), calibration, metrics, timings)
    record = build_record(identity, request=spec.request(), device=str(device), hardware=provenance.hardware_name(device),
                          provenance=prov, outcome=measured)
    return record, metrics, report

