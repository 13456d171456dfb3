"""The method protocol: what a sparsification method is, and the verbs the drivers call.

A method is a name, a frozen ``Params`` dataclass (numeric ranges declared with
:func:`~sparsebench.params.param`), a :class:`MethodMeta`, and verbs. Every verb takes the
run's :class:`PruneContext` explicitly; a method keeps no context between calls, only the
statistics it accumulates for the layers not yet pruned.

=================================  ==========================================================
``prepare(ctx) -> ctx``            once, before pruning (OWL: per-layer sparsities)
``observe(ctx, layer, x)``         per calibration sequence: the layer's inputs ``[..., in]``
``observe_gradient(ctx, layer, g)``  per calibration sequence: ``dLoss/dW`` as ``[out, in]``
``score(ctx, layer) -> [out, in]``  importance of every weight, higher = keep
``prune_layer(ctx, layer) -> mask``  choose and apply the layer's mask (default: select(score))
``release(ctx, layer)``            drop what was kept for the layer, once it is pruned
``score_blocks(ctx) -> [blocks]``  structured depth methods that score whole blocks (ShortGPT)
=================================  ==========================================================

A structured method (its ``meta.patterns`` are ``Depth``, ``Heads`` or ``Channels``) uses the
same verbs: its per-weight ``score`` is summed over each unit (``meta.unit_scores="weights"``),
or it scores blocks itself (``"blocks"``); the plan and the smaller model are shared
(:mod:`sparsebench.structure`).

Which verbs run, and in which order, is decided by the driver the runner chooses from the
metadata (:mod:`sparsebench.drivers`): layer by layer, all layers at once, or block by
block on calibration data.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .adapters import PrunableLayer
from .errors import InvalidSpecError
from .masks import select_mask
from .params import check_params, params_from_options
from .patterns import NM, Block, Group, Pattern, Structured, Unstructured, comparison_group
from .registry import Registry
from .stats import StatsByLayer

if TYPE_CHECKING:
    from .calibration_data import CalibrationSpec
    from .models import LoadedModel


@dataclass(frozen=True)
class NoParams:
    """A method without parameters."""


@dataclass(frozen=True)
class MethodMeta:
    """Taxonomy shown by ``sparsebench list methods`` and on the leaderboard; the runner
    chooses the driver from it."""

    summary: str
    paper: str | None = None  # arXiv id, e.g. "arXiv:2306.11695"
    citation: str = ""  # e.g. "Sun et al., 2023"
    one_shot: bool = True  # no retraining
    updates_weights: bool = False  # changes surviving weights (e.g. SparseGPT)
    needs_calibration: bool = False
    needs_gradients: bool = False
    prunes: bool = True  # False only for the dense baseline
    group: Group = Group.LAYER  # where unstructured scores compete (unstructured-global overrides it)
    patterns: tuple[type, ...] = (Unstructured, NM, Block)
    # structured targets only: how units are scored. "weights": the per-weight ``score`` summed over
    # each unit's weights ("all" of them, or only its "output" columns in the projection that reads
    # it); "blocks": ``score_blocks`` scores whole blocks
    unit_scores: str = "weights"
    unit_weights: str = "all"

    def __post_init__(self) -> None:
        if self.unit_scores not in ("weights", "blocks") or self.unit_weights not in ("all", "output"):
            raise InvalidSpecError(f"unit_scores is 'weights' or 'blocks' and unit_weights 'all' or 'output', "
                                   f"got {self.unit_scores!r}, {self.unit_weights!r}")
        structured = [issubclass(p, Structured) for p in self.patterns]
        if any(structured) and not all(structured):
            raise InvalidSpecError("a method either shrinks the model (structured targets) or masks weights, not both")

    @property
    def structured(self) -> bool:
        """The method removes whole units (its patterns are structured targets)."""
        return bool(self.patterns) and issubclass(self.patterns[0], Structured)


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
        return torch.Generator().manual_seed((self.seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


methods: Registry[type[Method]] = Registry("method", builtins="sparsebench.methods")


class Method(ABC):
    """Base of every sparsification method: params, metadata and the verbs, with defaults.

    Subclass :class:`ScoreMethod` (or :class:`InputStatsMethod` for methods scored from their
    layers' inputs); derive from ``Method`` directly only for a method that scores nothing
    itself (the dense baseline, a composite such as OWL).
    """

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    meta: ClassVar[MethodMeta]

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise InvalidSpecError(f"{self.name}: params must be {self.Params.__name__}, got {type(self.params).__name__}")
        check_params(f"method {self.name!r}", self.params)

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Method:
        """Build from string options (CLI ``--param k=v``), converted to the Params field types."""
        return cls(params_from_options(f"method {cls.name!r}", cls.Params, options))

    def check_pattern(self, pattern: Pattern) -> None:
        if not isinstance(pattern, self.meta.patterns):
            allowed = ", ".join(t.__name__ for t in self.meta.patterns)
            raise InvalidSpecError(f"method {self.name!r} does not support pattern {pattern} (supports {allowed})")

    @property
    def pruner(self) -> Method:
        """The method whose verbs the driver calls: this one, or the one a composite wraps."""
        return self

    # -- the verbs ------------------------------------------------------------------------
    def prepare(self, ctx: PruneContext) -> PruneContext:
        """Work done once before pruning; returns the context the driver prunes with."""
        return ctx

    def observe(self, ctx: PruneContext, layer: PrunableLayer, x: torch.Tensor) -> None:
        """Accumulate statistics from one calibration sequence's inputs to ``layer`` (``[..., in]``)."""

    def observe_gradient(self, ctx: PruneContext, layer: PrunableLayer, grad: torch.Tensor) -> None:
        """Accumulate one sequence's gradient of the model's loss w.r.t. ``layer``'s weight (``[out, in]``)."""

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        """Importance of every weight of ``layer`` as an ``[out, in]`` tensor (higher = keep)."""
        raise NotImplementedError(f"method {self.name!r} defines no score")

    def score_blocks(self, ctx: PruneContext) -> torch.Tensor:
        """Structured, ``unit_scores="blocks"``: importance of every block as ``[blocks]`` (higher = keep)."""
        raise NotImplementedError(f"method {self.name!r} scores no blocks")

    def select(self, ctx: PruneContext, layer: PrunableLayer, scores: torch.Tensor) -> torch.Tensor:
        """The mask (True = kept) for ``scores`` under the run's pattern, in the comparison group."""
        return select_mask(scores, ctx.pattern, ctx.sparsity_for(layer), comparison_group(ctx.pattern, self.meta.group))

    def prune_layer(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        """Choose and apply ``layer``'s mask (True = kept); return it.

        The default is score → :meth:`select` → zero the rest. Methods that also change
        the surviving weights (SparseGPT's reconstruction) or refine a mask (DSnoT)
        override this one step; the driver around it stays the same.
        """
        mask = self.select(ctx, layer, self.score(ctx, layer))
        layer.apply_mask(mask)
        return mask

    def release(self, ctx: PruneContext, layer: PrunableLayer) -> None:
        """Drop the statistics kept for ``layer`` (called once it is pruned)."""


class ScoreMethod(Method):
    """A method defined by an importance score per weight: implement :meth:`score`, and
    :meth:`observe` if it needs calibration inputs (``meta.needs_calibration``)."""

    @abstractmethod
    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        """Importance of every weight of ``layer`` as an ``[out, in]`` tensor (higher = keep)."""


class InputStatsMethod(ScoreMethod):
    """A calibration score method that keeps statistics of each layer's inputs in
    ``self.inputs`` (:class:`~sparsebench.stats.StatsByLayer`), dropped once the layer is
    pruned. Set ``moments = True`` to also keep what ``InputStats.mean`` / ``.var`` need."""

    moments: ClassVar[bool] = False

    def __init__(self, params: Any = None):
        super().__init__(params)
        self.inputs = StatsByLayer(moments=self.moments)

    def observe(self, ctx: PruneContext, layer: PrunableLayer, x: torch.Tensor) -> None:
        self.inputs.add(layer, x)

    def release(self, ctx: PruneContext, layer: PrunableLayer) -> None:
        self.inputs.pop(layer)
