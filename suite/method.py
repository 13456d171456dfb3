"""Method base classes and the method registry.

A method is a name, a frozen ``Params`` dataclass, a :class:`MethodMeta`, and either a
``score`` (for :class:`ScoreMethod`, the common case) or a whole ``prune`` step. Which
layers, calibration, mask selection and verification are shared and live elsewhere.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .adapters import PrunableLayer
from .errors import InvalidSpecError
from .masks import Group, Masks, select_global, select_mask
from .patterns import NM, Block, Pattern, Unstructured
from .registry import Registry
from .stats import StatsByLayer

if typing.TYPE_CHECKING:
    from .calibration_data import CalibrationSpec
    from .models import LoadedModel


@dataclass(frozen=True)
class NoParams:
    """A method without parameters."""


@dataclass(frozen=True)
class MethodMeta:
    """Taxonomy shown by ``sparsebench list methods`` and on the leaderboard."""

    summary: str
    paper: str | None = None  # arXiv id, e.g. "arXiv:2306.11695"
    citation: str = ""  # e.g. "Sun et al., 2023"
    one_shot: bool = True  # no retraining
    updates_weights: bool = False  # changes surviving weights (e.g. SparseGPT)
    needs_calibration: bool = False
    needs_gradients: bool = False
    prunes: bool = True  # False only for the dense baseline
    mask_group: Group = "layer"  # where unstructured scores compete
    patterns: tuple[type, ...] = (Unstructured, NM, Block)


@dataclass
class PruneContext:
    """Everything a method may use while pruning one model."""

    loaded: LoadedModel
    pattern: Pattern
    sparsity: float
    seed: int
    calibration: CalibrationSpec | None
    progress: bool = True
    layer_sparsity: Mapping[str, float] = field(default_factory=dict)  # per-layer overrides (OWL)
    # where the calibration driver computes; None = where the model is. A CUDA device while the
    # model stays on the CPU moves one block at a time to it (offload, for models larger than it)
    compute_device: torch.device | None = None
    # the sampled calibration tokens, keyed by what produced them (see calibration.calibration_tokens)
    token_cache: tuple[Any, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def sparsity_for(self, layer: PrunableLayer) -> float:
        return self.layer_sparsity.get(layer.name, self.sparsity)

    def generator(self, key: str = "") -> torch.Generator:
        """A CPU generator seeded by the run seed and ``key`` (order-independent randomness)."""
        import zlib

        return torch.Generator().manual_seed((self.seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


methods: Registry[type[Method]] = Registry("method", builtins="sparsebench.methods")


class Method(ABC):
    """Base of every sparsification method."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    meta: ClassVar[MethodMeta]

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise InvalidSpecError(f"{self.name}: params must be {self.Params.__name__}, got {type(self.params).__name__}")

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Method:
        """Build from string options (CLI ``--param k=v``), converted to the Params field types."""
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        hints = typing.get_type_hints(cls.Params)
        kwargs: dict[str, Any] = {}
        for key, raw in options.items():
            if key not in fields:
                raise InvalidSpecError(f"method {cls.name!r} has no parameter {key!r}; it has: {', '.join(fields) or 'none'}")
            kwargs[key] = _convert(raw, hints[key], f"{cls.name}.{key}")
        try:
            return cls(cls.Params(**kwargs))
        except (TypeError, ValueError) as exc:
            raise InvalidSpecError(f"method {cls.name!r}: {exc}") from None

    def check_pattern(self, pattern: Pattern) -> None:
        if not isinstance(pattern, self.meta.patterns):
            allowed = ", ".join(t.__name__ for t in self.meta.patterns)
            raise InvalidSpecError(f"method {self.name!r} does not support pattern {pattern} (supports {allowed})")

    @abstractmethod
    def prune(self, ctx: PruneContext) -> Masks:
        """Prune ``ctx.loaded.model`` in place; return the masks applied (True = kept)."""


def _convert(raw: str, typ: Any, what: str) -> Any:
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        if raw.lower() in ("none", "null"):
            return None
        typ = args[0]
    if origin is typing.Literal:
        if raw not in typing.get_args(typ):
            raise InvalidSpecError(f"{what} must be one of {typing.get_args(typ)}, got {raw!r}")
        return raw
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return typ(raw)
    except (TypeError, ValueError):
        raise InvalidSpecError(f"{what}: cannot read {raw!r} as {getattr(typ, '__name__', typ)}") from None


class ScoreMethod(Method):
    """A method defined by an importance score per weight (higher = keep).

    Without calibration, each layer is scored and masked in turn. With
    ``meta.needs_calibration``, the shared block-by-block calibration driver
    (:mod:`sparsebench.calibration`) calls :meth:`observe` with each prunable layer's
    inputs, then :meth:`prune_layer` for every layer of the block, then :meth:`release`.
    With ``meta.needs_gradients`` it first calls :meth:`observe_gradient` once per
    calibration sequence. While :meth:`prune` runs, ``self.ctx`` is the run's
    :class:`PruneContext`.
    """

    ctx: PruneContext

    def observe(self, layer: PrunableLayer, x: torch.Tensor) -> None:
        """Accumulate statistics from one calibration sequence's inputs to ``layer`` (``[..., in]``)."""

    def observe_gradient(self, layer: PrunableLayer, grad: torch.Tensor) -> None:
        """Accumulate one sequence's gradient of the LM loss w.r.t. ``layer``'s weight (``[out, in]``)."""

    @abstractmethod
    def score(self, layer: PrunableLayer) -> torch.Tensor:
        """Importance of every weight of ``layer`` as an ``[out, in]`` tensor."""

    def select(self, ctx: PruneContext, layer: PrunableLayer, scores: torch.Tensor) -> torch.Tensor:
        return select_mask(scores, ctx.pattern, ctx.sparsity_for(layer), self.meta.mask_group)

    def prune_layer(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        """Choose and apply ``layer``'s mask (True = kept); return it.

        The default is score → :meth:`select` → zero the rest. Methods that also change
        the surviving weights (SparseGPT's reconstruction) or refine a mask (DSnoT)
        override this one step; the driver around it stays the same.
        """
        mask = self.select(ctx, layer, self.score(layer))
        layer.apply_mask(mask)
        return mask

    def release(self, layer: PrunableLayer) -> None:
        """Drop the statistics kept for ``layer`` (called once it is pruned)."""

    def prune(self, ctx: PruneContext) -> Masks:
        self.check_pattern(ctx.pattern)
        self.ctx = ctx
        try:
            return self._prune(ctx)
        finally:
            del self.ctx

    def _prune(self, ctx: PruneContext) -> Masks:
        if self.meta.needs_calibration:
            from .calibration import prune_blockwise

            return prune_blockwise(self, ctx)
        layers = ctx.loaded.adapter.prunable_layers(ctx.loaded.model)
        if isinstance(ctx.pattern, Unstructured) and ctx.pattern.scope == "global":
            with torch.no_grad():
                masks = select_global({layer.name: self.score(layer) for layer in layers}, ctx.sparsity)
            for layer in layers:
                layer.apply_mask(masks[layer.name])
            return {n: m.cpu() for n, m in masks.items()}
        masks = {}
        with torch.no_grad():
            for layer in _progress(layers, ctx.progress, f"{self.name}: pruning"):
                masks[layer.name] = self.prune_layer(ctx, layer).cpu()
        return masks


class InputStatsMethod(ScoreMethod):
    """A calibration score method that keeps statistics of each layer's inputs in
    ``self.inputs`` (:class:`~sparsebench.stats.StatsByLayer`), dropped once the layer is
    pruned. Set ``moments = True`` to also keep what ``InputStats.mean`` / ``.var`` need."""

    moments: ClassVar[bool] = False

    def __init__(self, params: Any = None):
        super().__init__(params)
        self.inputs = StatsByLayer(moments=self.moments)

    def observe(self, layer: PrunableLayer, x: torch.Tensor) -> None:
        self.inputs.add(layer, x)

    def release(self, layer: PrunableLayer) -> None:
        self.inputs.pop(layer)


def _progress(items: list, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not enabled, leave=False, unit="layer")


def make_method(name: str, params: Any = None, options: Mapping[str, str] | None = None) -> Method:
    """Instantiate a registered method from params or string options."""
    cls = methods.get(name)
    if options:
        return cls.from_options(options)
    return cls(params)
