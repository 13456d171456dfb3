"""Drivers: the loops that call a method's verbs over a model. The runner chooses one.

==================  ======================================  =========================================
driver              chosen when (pruning method's meta, group)  calls
==================  ======================================  =========================================
``KeepAll``         ``meta.prunes`` is False (dense)        nothing
``LayerByLayer``    no calibration; group layer or row      ``prune_layer``, ``release`` per layer
``AllLayers``       no calibration; group global            ``score`` per layer, one selection over all
``BlockByBlock``    ``needs_calibration``; layer or row     ``observe_gradient`` per sequence (with
                                                            ``needs_gradients``); per block:
                                                            ``observe``, then ``prune_layer`` and
                                                            ``release`` per layer
``ShrinkByUnits``   structured, ``unit_scores="weights"``   ``observe_gradient`` / ``observe`` on the
                                                            dense model (read-only pass), ``score``
                                                            per layer summed over each unit, then
                                                            one plan and a smaller model
``ShrinkByBlocks``  structured, ``unit_scores="blocks"``    ``score_blocks``, then one plan and a
                                                            smaller model
==================  ======================================  =========================================

Mask drivers return the masks; structured drivers replace ``ctx.loaded.model`` by the smaller
model and return the :class:`~sparsebench.structure.RemovalPlan`.

The group is :func:`~sparsebench.patterns.comparison_group` of the pattern and the method's
own. Every driver first calls ``method.prepare(ctx)`` and then drives ``method.pruner``
(the method itself, or the method a composite such as OWL wraps). A new driver is one
more class in :data:`DRIVERS` whose :meth:`Driver.handles` says when it applies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import torch

from .calibration import accumulate_gradients, blockwise, calibration_tokens
from .errors import InvalidSpecError
from .masks import Masks, select_global
from .patterns import Group, Pattern, comparison_group
from .pruning import Method, MethodMeta, PruneContext
from .structure import RemovalPlan, UnitAccumulator, UnitScores, geometry, layout_of, select_plan, shrink


class Driver(ABC):
    """One order of calling a method's verbs."""

    @staticmethod
    @abstractmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        """Whether this driver runs a method with ``meta`` whose scores compete in ``group``."""

    @abstractmethod
    def run(self, method: Method, ctx: PruneContext) -> Masks | RemovalPlan:
        """Prune ``ctx.loaded.model`` with ``method``'s verbs; return the masks (True = kept) or the removal plan."""

    def prune(self, method: Method, ctx: PruneContext) -> Masks | RemovalPlan:
        """Prepare ``method``, then run its pruner."""
        return self.run(method.pruner, method.prepare(ctx))


class KeepAll(Driver):
    """The dense baseline: nothing is pruned."""

    @staticmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        return not meta.prunes

    def run(self, method: Method, ctx: PruneContext) -> Masks:
        return {}


class LayerByLayer(Driver):
    """Each layer in turn: ``prune_layer`` then ``release``."""

    @staticmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        return meta.prunes and not meta.structured and not meta.needs_calibration and group is not Group.GLOBAL

    def run(self, method: Method, ctx: PruneContext) -> Masks:
        masks: Masks = {}
        layers = ctx.loaded.adapter.prunable_layers(ctx.loaded.model)
        with torch.no_grad():
            for layer in _progress(layers, ctx.progress, f"{method.name}: pruning"):
                masks[layer.name] = method.prune_layer(ctx, layer).cpu()
                method.release(ctx, layer)
        return masks


class AllLayers(Driver):
    """Every layer scored, then one threshold over all of them (``unstructured-global``)."""

    @staticmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        return meta.prunes and not meta.structured and not meta.needs_calibration and group is Group.GLOBAL

    def run(self, method: Method, ctx: PruneContext) -> Masks:
        layers = ctx.loaded.adapter.prunable_layers(ctx.loaded.model)
        with torch.no_grad():
            masks = select_global({layer.name: method.score(ctx, layer) for layer in layers}, ctx.sparsity)
            for layer in layers:
                layer.apply_mask(masks[layer.name])
                method.release(ctx, layer)
        return {n: m.cpu() for n, m in masks.items()}


class BlockByBlock(Driver):
    """On calibration data, one block at a time (:func:`sparsebench.calibration.blockwise`)."""

    @staticmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        return meta.prunes and not meta.structured and meta.needs_calibration and group is not Group.GLOBAL

    def run(self, method: Method, ctx: PruneContext) -> Masks:
        masks: Masks = {}
        tokens = calibration_tokens(ctx)
        if method.meta.needs_gradients:
            accumulate_gradients(ctx, tokens, lambda layer, g: method.observe_gradient(ctx, layer, g), f"{method.name}: gradients")

        def step(block) -> None:
            for layer in block.layers:
                masks[layer.name] = method.prune_layer(ctx, layer).cpu()
                method.release(ctx, layer)

        blockwise(ctx, lambda layer, x: method.observe(ctx, layer, x), step, desc=f"{method.name}: pruning", tokens=tokens)
        return masks


def _shrink(ctx: PruneContext, plan: RemovalPlan) -> RemovalPlan:
    ctx.loaded.model = shrink(ctx.loaded.adapter, ctx.loaded.model, plan)
    return plan


class ShrinkByUnits(Driver):
    """Structured: the method's per-weight scores summed over each unit (head, channel) on the
    dense model, one plan for all blocks, then the smaller model."""

    @staticmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        return meta.prunes and meta.structured and meta.unit_scores == "weights"

    def run(self, method: Method, ctx: PruneContext) -> RemovalPlan:
        adapter, model = ctx.loaded.adapter, ctx.loaded.model
        acc = UnitAccumulator(ctx.pattern, layout_of(adapter, model), geometry(adapter, model), method.meta.unit_weights)

        def step(block) -> None:
            acc.add_block(block, lambda layer: method.score(ctx, layer))
            for layer in block.layers:
                method.release(ctx, layer)

        if method.meta.needs_calibration:
            tokens = calibration_tokens(ctx)
            if method.meta.needs_gradients:
                accumulate_gradients(ctx, tokens, lambda layer, g: method.observe_gradient(ctx, layer, g), f"{method.name}: gradients")
            blockwise(ctx, lambda layer, x: method.observe(ctx, layer, x), step, desc=f"{method.name}: scoring", tokens=tokens,
                      changes_weights=False)
        else:
            with torch.no_grad():
                for block in adapter.blocks(model):
                    step(block)
        return _shrink(ctx, select_plan(ctx.pattern, ctx.sparsity, acc.scores(), acc.geo))


class ShrinkByBlocks(Driver):
    """Structured depth: the method scores whole blocks, the lowest go."""

    @staticmethod
    def handles(meta: MethodMeta, group: Group) -> bool:
        return meta.prunes and meta.structured and meta.unit_scores == "blocks"

    def run(self, method: Method, ctx: PruneContext) -> RemovalPlan:
        geo = geometry(ctx.loaded.adapter, ctx.loaded.model)
        with torch.no_grad():
            scores = method.score_blocks(ctx)
        return _shrink(ctx, select_plan(ctx.pattern, ctx.sparsity, UnitScores(blocks=scores), geo))


DRIVERS: tuple[type[Driver], ...] = (KeepAll, LayerByLayer, AllLayers, BlockByBlock, ShrinkByUnits, ShrinkByBlocks)

_WHERE = {Group.LAYER: "within each layer", Group.ROW: "within each row", Group.GLOBAL: "across all layers"}


def choose_driver(method: Method, pattern: Pattern) -> Driver:
    """The driver that prunes with ``method`` under ``pattern``; a one-line error if none can."""
    pruner = method.pruner
    group = comparison_group(pattern, pruner.meta.group)
    for m in dict.fromkeys((method, pruner)):  # a composite (OWL) must fit as well as what it wraps
        m.check_pattern(pattern)
        if not any(d.handles(m.meta, group) for d in DRIVERS):
            needs = "needs" if m.meta.needs_calibration else "needs no"
            raise InvalidSpecError(f"method {method.name!r} cannot prune with pattern {pattern}: "
                                   f"no driver compares scores {_WHERE[group]} for a method that {needs} calibration")
    (driver,) = [d for d in DRIVERS if d.handles(pruner.meta, group)]
    return driver()


def prune(method: Method, ctx: PruneContext) -> Masks | RemovalPlan:
    """Prune ``ctx.loaded.model`` with ``method`` through the driver chosen for it; return the masks
    (or, for a structured target, the removal plan: ``ctx.loaded.model`` is then the smaller model)."""
    return choose_driver(method, ctx.pattern).prune(method, ctx)


def _progress(items: list, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not enabled, leave=False, unit="layer")
