"""Model-family adapter: where the blocks and prunable layers of a model are.

Found generically, so Llama, Mistral, Qwen, OPT, GPT-2 (and BERT / vision backbones) need
no per-family code: the *blocks* are the children of the longest ``nn.ModuleList`` of
identical modules (decoder layers, encoder layers, stages); the *prunable layers* are the
``nn.Linear`` (and GPT-2 ``Conv1D``, optionally ``nn.Conv2d``) modules inside blocks.
Embeddings and the LM head live outside the blocks and are therefore never pruned by
default, as in the literature. No other module knows a model's attribute names.

Vision: with ``include_conv`` the ``nn.Conv2d`` layers inside blocks are prunable too, except
grouped / depthwise convolutions (``groups > 1``), whose ``[out, in/groups * kh * kw]``
weights are tiny and left dense by default. Stems, heads and classifiers sit outside the
blocks and stay dense, the usual "first and last layer dense" convention.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .errors import SparsebenchError


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' GPT-2 style Conv1D stores weight as [in, out]
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


@dataclass(frozen=True)
class PrunableLayer:
    """One prunable weight matrix, always seen in ``[out, in]`` orientation."""

    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        """The weight as ``[out, in]``; a view, so in-place edits reach the module."""
        w = self.module.weight
        if _is_conv1d(self.module):
            return w.t()
        if w.dim() > 2:  # conv: [out, in * kh * kw]
            return w.flatten(1)
        return w

    def as_matrix(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor shaped like the module's weight (e.g. its gradient) seen as ``[out, in]``."""
        if _is_conv1d(self.module):
            return t.t()
        if t.dim() > 2:
            return t.flatten(1)
        return t

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    def set_weight(self, w: torch.Tensor) -> None:
        """Write a new ``[out, in]`` weight back in the module's own layout."""
        with torch.no_grad():
            self.weight.copy_(w.to(self.module.weight.dtype))

    def apply_mask(self, mask: torch.Tensor) -> None:
        with torch.no_grad():
            self.weight.mul_(mask.to(self.module.weight.device, self.module.weight.dtype))


@dataclass(frozen=True)
class Block:
    """One repeated unit (decoder layer) and its prunable layers, in execution order."""

    index: int
    name: str
    module: nn.Module
    layers: tuple[PrunableLayer, ...]


class ModelAdapter:
    """Generic adapter; ``include_conv`` makes ``nn.Conv2d`` layers prunable (vision)."""

    def __init__(self, include_conv: bool = False):
        self.include_conv = include_conv

    def _prunable(self, module: nn.Module) -> bool:
        if isinstance(module, nn.Linear) or _is_conv1d(module):
            return True
        return self.include_conv and isinstance(module, nn.Conv2d) and module.groups == 1

    def block_list(self, model: nn.Module) -> tuple[str, nn.ModuleList]:
        """Name and module of the longest ModuleList of same-class modules holding prunable layers."""
        best: tuple[str, nn.ModuleList] | None = None
        for name, mod in model.named_modules():
            if not isinstance(mod, nn.ModuleList) or len(mod) < 1:
                continue
            if len({type(c) for c in mod}) != 1:
                continue
            if not any(self._prunable(m) for m in mod[0].modules()):
                continue
            if best is None or len(mod) > len(best[1]):
                best = (name, mod)
        if best is None:
            raise SparsebenchError(f"cannot find repeated blocks with prunable layers in {type(model).__name__}")
        return best

    def block_lists(self, model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
        """Every ModuleList of the same block class as :meth:`block_list`'s, in module order.

        Staged backbones (ConvNeXt, Swin, some EfficientNets) keep one ModuleList of blocks
        per stage; their blocks are the concatenation of those lists. Models with a single
        list (decoder LMs, BERT, ViT, EfficientNet-Lite) get exactly that list.
        """
        _, longest = self.block_list(model)
        cls = type(longest[0])
        out: list[tuple[str, nn.ModuleList]] = []
        for name, mod in model.named_modules():
            if not isinstance(mod, nn.ModuleList) or len(mod) < 1 or any(type(c) is not cls for c in mod):
                continue
            if any(name.startswith(f"{prev}.") for prev, _ in out):
                continue  # nested inside a list already taken
            out.append((name, mod))
        return out

    def blocks(self, model: nn.Module) -> list[Block]:
        out: list[Block] = []
        for prefix, modlist in self.block_lists(model):
            for i, block in enumerate(modlist):
                bname = f"{prefix}.{i}" if prefix else str(i)
                layers = tuple(
                    PrunableLayer(f"{bname}.{n}", m) for n, m in block.named_modules() if n and self._prunable(m)
                )
                out.append(Block(len(out), bname, block, layers))
        return out

    def prunable_layers(self, model: nn.Module) -> list[PrunableLayer]:
        return [layer for b in self.blocks(model) for layer in b.layers]

    def iter_untargeted(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        """Every parameter that pruning must leave untouched (all but targeted weights)."""
        targeted = {id(layer.module.weight) for layer in self.prunable_layers(model)}
        seen: set[int] = set()
        for name, p in model.named_parameters():
            if id(p) in targeted or id(p) in seen:
                continue
            seen.add(id(p))
            yield name, p
