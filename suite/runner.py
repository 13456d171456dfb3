"""The runner: one spec → prune → verify → evaluate → time kernels → one stored record.

Nothing is written until the end, and then in one transaction: a crash or Ctrl-C at any
point leaves the database as it was. Every check that needs no model (names, ranges,
patterns, the database itself) runs before anything heavy is loaded.
"""

from __future__ import annotations

import datetime as dt
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from . import provenance
from .errors import InvalidSpecError, VerificationError
from .masks import MaskReport, fingerprint, require, verify
from .method import Method, PruneContext, methods
from .models import LoadedModel, ModelEntry, load_model, resolve_model, resolve_weights
from .patterns import Unstructured, resolve_sparsity
from .spec import RunSpec, params_dict, spec_hash
from .store import Store
from .suites import Suite, suites
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
    record: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    report: MaskReport | None = None
    timings: list[dict[str, Any]] = field(default_factory=list)


def plan(spec: RunSpec) -> Plan:
    """Validate ``spec`` without loading anything heavy; raise a one-line error if it is wrong."""
    cls = methods.get(spec.method)
    method = cls(spec.params)
    suite = suites.get(spec.suite)
    task_names = suite.task_list(spec.tasks)
    entry = resolve_model(spec.model)
    if entry.kind != suite.modality:
        raise InvalidSpecError(f"model {spec.model!r} is a {entry.kind} model; suite {suite.name!r} is for {suite.modality}")
    if not method.meta.prunes:  # the dense baseline: one record per model and suite
        spec = replace(spec, pattern=Unstructured(), sparsity=0.0)
        sparsity = 0.0
    else:
        sparsity = resolve_sparsity(spec.pattern, spec.sparsity)
        method.check_pattern(spec.pattern)
        if isinstance(spec.pattern, Unstructured) and spec.pattern.scope == "global" and method.meta.needs_calibration:
            raise InvalidSpecError(f"method {cls.name!r} prunes block by block and cannot use a global threshold")
    if spec.kernels:
        from .cache import check_regime
        from .kernel import kernels
        from .kernel_choice import AUTO

        for k in spec.kernels:
            if k != AUTO:
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


def spec_hash_for(p: Plan, model_revision: str, hardware: str | None) -> str:
    """The hash a run of plan ``p`` is stored under (``hardware`` counts only when timing kernels)."""
    spec = p.spec
    return spec_hash(
        method=spec.method, params=params_dict(p.method.params), model=p.model.name, model_revision=model_revision,
        pattern=str(spec.pattern), sparsity=p.sparsity, suite=p.suite.name, suite_version=p.suite.version,
        tasks=p.tasks, seed=spec.seed, kernels=spec.kernels, hardware=hardware, cache=spec.cache, latency_dtype=spec.latency_dtype,
    )


def _calibration(p: Plan, seed: int):
    """The suite's calibration spec, sampled with the run's seed (``--seed``), for methods that calibrate."""
    return replace(p.suite.calibration, seed=seed) if p.method.meta.needs_calibration else None


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


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
    device = torch.device(spec.device)
    hardware = provenance.hardware_label(device)
    params = params_dict(p.method.params)
    h = spec_hash_for(p, weights.revision, hardware)
    if not force and (old := store.has_run(h)) is not None:
        echo(f"already stored as run {old.id} (spec {h[:12]}); use --force to run again")
        return RunResult(h, old.id, skipped=True)

    torch.manual_seed(spec.seed)
    echo(f"loading {p.model.name} from {weights.source.describe()} ...")
    loaded = load_model(p.model, torch.device("cpu") if spec.offload else device)
    adapter = loaded.adapter
    targeted = [layer.name for layer in adapter.prunable_layers(loaded.model)]
    before = fingerprint(dict(adapter.iter_untargeted(loaded.model)))

    ctx = PruneContext(loaded, spec.pattern, p.sparsity, spec.seed, _calibration(p, spec.seed), progress,
                       compute_device=device if spec.offload else None)
    echo(f"pruning with {spec.method} to {p.sparsity:.0%} {spec.pattern} ...")
    t0 = time.perf_counter()
    masks = p.method.prune(ctx)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    prune_time = time.perf_counter() - t0

    weights_now = {layer.name: layer.weight.detach() for layer in adapter.prunable_layers(loaded.model)}
    report = require(verify(weights_now, masks, spec.pattern, p.sparsity, targeted))
    if fingerprint(dict(adapter.iter_untargeted(loaded.model))) != before:
        raise VerificationError(f"method {spec.method!r} changed parameters outside the targeted layers")
    echo(f"verified: {report.achieved_sparsity:.2%} sparsity over {len(targeted)} layers")

    t0 = time.perf_counter()
    metrics: list[Metric] = []
    for name in p.tasks:
        metrics.extend(p.suite.make_task(name).evaluate(loaded, progress=progress))
    eval_time = time.perf_counter() - t0

    timings: list[dict[str, Any]] = []
    if spec.kernels:
        from .latency import end_to_end_timings

        timings = end_to_end_timings(loaded, masks, spec.kernels, spec.pattern, p.sparsity, progress=progress, cache=spec.cache,
                                     dtype=getattr(torch, spec.latency_dtype) if spec.latency_dtype else None)

    prov = provenance.collect(device)
    prov["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    prov["mask_report"] = {"achieved": report.achieved_sparsity, "nm_valid": report.nm_valid, "layers": len(report.layers)}
    prov["model_source"] = loaded.source
    if spec.offload:  # pruned block by block on spec.device; the model, and so the tasks, stayed on the CPU
        prov["offload"] = {"compute_device": spec.device, "model_device": str(loaded.device)}
    record = dict(
        spec_hash=h, status="completed", created_at=dt.datetime.now(dt.timezone.utc),
        method=spec.method, method_params=params, model=p.model.name, model_revision=loaded.revision,
        pattern=str(spec.pattern), sparsity=p.sparsity, achieved_sparsity=report.achieved_sparsity,
        suite=p.suite.name, suite_version=p.suite.version, tasks={"names": list(p.tasks)}, seed=spec.seed,
        calibration=str(ctx.calibration) if ctx.calibration else None, device=str(device), hardware=hardware,
        prune_time_s=prune_time, eval_time_s=eval_time, peak_memory_mb=_peak_memory_mb(device),
        sparsebench_version=prov["packages"]["sparsebench"], torch_version=prov["packages"]["torch"],
        transformers_version=prov["packages"]["transformers"], git_sha=prov["git_sha"], provenance=prov,
        spec={"method": spec.method, "params": params, "model": spec.model, "pattern": str(spec.pattern),
              "sparsity": p.sparsity, "suite": p.suite.name, "tasks": list(p.tasks), "seed": spec.seed,
              "device": spec.device, "kernels": list(spec.kernels), "offload": spec.offload,
              **({"cache": spec.cache, "latency_dtype": spec.latency_dtype} if spec.kernels else {})},
    )
    metric_rows = [
        dict(task=m.task, task_version=m.task_version, metric=m.name, value=m.value, stderr=m.stderr,
             higher_is_better=m.higher_is_better, n=m.n, details=dict(m.details))
        for m in metrics
    ]
    run_id = store.write_run(record, metric_rows, timings, replace=force)
    return RunResult(h, run_id, False, record, metrics, report, timings)


def load_and_prune(spec: RunSpec) -> tuple[Plan, LoadedModel, Any]:
    """Load and prune without evaluating or storing (for tools that need the pruned model)."""
    p = plan(spec)
    loaded = load_model(p.model, p.spec.device)
    ctx = PruneContext(loaded, p.spec.pattern, p.sparsity, p.spec.seed, _calibration(p, p.spec.seed), False)
    return p, loaded, p.method.prune(ctx)
