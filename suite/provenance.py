"""Provenance recorded with every run: code version, package versions, hardware."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("sparsebench", "torch", "transformers", "lm_eval", "pandas", "sqlalchemy", "numpy", "tokenizers", "datasets", "gguf")


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the sparsebench checkout (``-dirty`` if modified), or the package version."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"release-{version_of('sparsebench')}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str | torch.device = "cpu") -> dict[str, Any]:
    dev = torch.device(device)
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
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


def hardware_label(device: str | torch.device = "cpu") -> str:
    """Short label for tables: the GPU name on CUDA, else the CPU name and thread count."""
    hw = hardware(device)
    return hw.get("gpu") or f"{hw['cpu']} ({hw['torch_threads']} threads)"


def collect(device: str | torch.device = "cpu") -> dict[str, Any]:
    """The provenance dict stored with a run."""
    return {
        "git_sha": git_sha(),
        "packages": {p: version_of(p) for p in PACKAGES},
        "python": platform.python_version(),
        "hardware": hardware(device),
        "env": {k: os.environ[k] for k in ("SPARSEBENCH_DATA_DIR", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS") if k in os.environ},
    }
