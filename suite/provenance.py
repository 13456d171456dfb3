"""Provenance recorded with every run: code version, package versions, hardware, threads, converted weights."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .data import Resolved

PACKAGES = ("sparsebench", "torch", "transformers", "lm_eval", "pandas", "sqlalchemy", "numpy", "tokenizers", "datasets", "gguf")


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the sparsebench checkout (``-dirty`` if modified), or the release version
    outside a checkout. Quiet: git's messages never reach the terminal."""
    here = Path(__file__).resolve().parent
    quiet = dict(cwd=here, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=5)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], check=True, **quiet).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **quiet).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"release-{version_of('sparsebench')}"


def _cpu_name() -> str:
    """The CPU's model name with, where /proc/cpuinfo gives them, its family, model and widest
    vector ISA: a VM's generic name ("AMD EPYC") covers generations that run different kernel
    code (AVX2 or AVX-512) and reach different speedups, whose timings must not be pooled."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines())}
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    generation = f"family {info['cpu family']} model {info['model']}" if "cpu family" in info and "model" in info else ""
    detail = ", ".join(d for d in (generation, isa) if d)
    return f"{name} ({detail})" if detail else name


def hardware(device: str | torch.device = "cpu") -> dict[str, Any]:
    dev = torch.device(device)
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            driver=_nvidia_driver(),
        )
    return info


def _nvidia_driver() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware_name(device: str | torch.device = "cpu") -> str:
    """The machine a result's timings are of: the GPU's name on CUDA, else the CPU's name.

    Part of the identity of runs that time kernels, so it holds no process state (threads).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return "unknown CUDA device"
        return torch.cuda.get_device_name(dev.index if dev.index is not None else torch.cuda.current_device())
    return _cpu_name()


def hardware_label(device: str | torch.device = "cpu") -> str:
    """Short label for timing rows and tables: the GPU name on CUDA, else the CPU name and thread count."""
    name = hardware_name(device)
    threads = torch.get_num_threads()
    return name if torch.device(device).type == "cuda" else f"{name} ({threads} thread{'' if threads == 1 else 's'})"


DIGEST_FILE = ".sparsebench-sha256"  # the cached digest of a folder, next to the key of its files' metadata


def folder_digest(folder: Path) -> str:
    """sha256 over the names and contents of the files in ``folder`` (recursively).

    Computed once and cached in the folder, next to a key of the files' names, sizes,
    modification times and inodes; a replaced or modified file changes the key, and the
    digest is computed again.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGEST_FILE)
    stats = [(p.relative_to(folder), p.stat()) for p in files]
    key = hashlib.sha256("\n".join(f"{rel}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}" for rel, st in stats).encode()).hexdigest()
    cache = folder / DIGEST_FILE
    try:
        cached_key, digest = cache.read_text().split()
        if cached_key == key:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(folder)}\0".encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(2**22), b""):
                h.update(chunk)
    digest = h.hexdigest()
    try:
        cache.write_text(f"{key} {digest}\n")
    except OSError:
        pass  # a read-only cache: computed again next time
    return digest


def converted_weights(found: Resolved) -> dict[str, str] | None:
    """Where the fp32 folder converted from GGUF weights is, and its content digest (None for
    weights loaded as they are). The causal-LM loader loads GGUF weights from this folder."""
    from .models import converted_folder

    folder = converted_folder(found)
    return None if folder is None else {"path": str(folder), "sha256": folder_digest(folder)}


def collect(device: str | torch.device = "cpu") -> dict[str, Any]:
    """The provenance dict stored with a run."""
    return {
        "git_sha": git_sha(),
        "packages": {p: version_of(p) for p in PACKAGES},
        "python": platform.python_version(),
        "hardware": hardware(device),
        "threads": torch.get_num_threads(),
        "env": {k: os.environ[k] for k in ("SPARSEBENCH_DATA_DIR", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS") if k in os.environ},
    }
