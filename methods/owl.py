"""OWL: outlier-weighted layerwise sparsity (Yin et al., 2023, arXiv:2310.05175; ICML 2024).

Non-uniform sparsity across blocks, for any score-based method (``base``, Wanda by default):

1. a calibration pass over the dense model computes, for every block ``l``, its layerwise
   outlier distribution ``D_l``: the fraction of the block's weights whose Wanda score
   ``|W_ij|·‖X_j‖₂`` exceeds ``M`` times the mean score of the block (``M = m``, default 5);
2. ``D`` is min-max scaled to ``[0, 2λ]`` (``λ = lam``, default 0.08), centred on the
   target density: ``density_l = D̂_l − mean(D̂) + (1 − S)``, ``sparsity_l = 1 − density_l``,
   so blocks with more outliers are pruned less, every sparsity lies in ``[S−λ, S+λ]`` and
   their mean is the target ``S``. The mean is weighted by each block's prunable weights:
   the paper's decoder blocks are all the same size, where this is its plain mean; on a
   model whose blocks differ (a CNN's stages) the plain mean would miss the overall target;
3. ``base`` prunes with these per-layer sparsities (``PruneContext.layer_sparsity``).

In the method protocol, steps 1–2 are OWL's ``prepare`` (a read-only calibration pass of
its own) and step 3 is the base method as OWL's ``pruner``: the runner drives the base
exactly as it would alone (block by block for Wanda, layer by layer for magnitude).

Unstructured only: a hardware N:M pattern fixes every layer's sparsity, leaving nothing
to redistribute. The overall sparsity is ``S`` (up to clamping at 0 and 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from sparsebench.adapters import ModelBlock
from sparsebench.calibration import blockwise
from sparsebench.errors import InvalidSpecError
from sparsebench.params import param
from sparsebench.patterns import Unstructured
from sparsebench.pruning import Method, MethodMeta, PruneContext, ScoreMethod, methods
from sparsebench.stats import StatsByLayer

from .wanda import wanda_score


@dataclass(frozen=True)
class OWLParams:
    base: str = "wanda"  # the score-based method that prunes with OWL's layer sparsities
    m: float = param(5.0, gt=0)  # outlier threshold, as a multiple of the block's mean score
    lam: float = param(0.08, ge=0, lt=1)  # λ: largest deviation of a block's sparsity from the target


def outlier_ratio(scores: list[torch.Tensor], m: float) -> float:
    """Fraction of all ``scores`` (one block's layers) above ``m`` × their mean."""
    flat = torch.cat([s.flatten().float() for s in scores])
    return float((flat > m * flat.mean()).float().mean())


def owl_sparsities(ratios: list[float], sparsity: float, lam: float, sizes: list[int] | None = None) -> list[float]:
    """Per-block sparsities from outlier ratios: within ``±lam`` of each other, fewer outliers → sparser,
    and a mean of ``sparsity`` weighted by the blocks' ``sizes`` (prunable weights; equal if omitted)."""
    d = torch.tensor(ratios, dtype=torch.float64)
    w = torch.tensor(sizes if sizes is not None else [1] * len(ratios), dtype=torch.float64)
    spread = d.max() - d.min()
    scaled = (d - d.min()) / spread * (2 * lam) if spread > 0 else torch.zeros_like(d)
    density = scaled - (scaled * w).sum() / w.sum() + (1 - sparsity)
    return [min(max(float(1 - x), 0.0), 1.0) for x in density]  # only bites when |sparsity ± lam| leaves [0, 1]


@methods.register("owl")
class OWL(Method):
    """Outlier-weighted non-uniform block sparsity, then ``base`` (a score-based method) prunes."""

    Params = OWLParams
    meta = MethodMeta(
        "non-uniform layer sparsity from outlier ratios (|W|·‖X‖ > M·mean), then the base method",
        paper="arXiv:2310.05175", citation="Yin et al., 2023",
        needs_calibration=True, patterns=(Unstructured,),
    )

    def __init__(self, params=None):
        super().__init__(params)
        base = methods.get(self.params.base)
        if not issubclass(base, ScoreMethod):
            raise InvalidSpecError(f"owl: base must be a score-based method (e.g. wanda, magnitude, sparsegpt), got {self.params.base!r}")
        self.base = base()

    def layer_sparsities(self, ctx: PruneContext) -> dict[str, float]:
        """OWL's per-layer target sparsities for the model in ``ctx`` (dense calibration pass)."""
        inputs = StatsByLayer()
        blocks: list[ModelBlock] = []
        ratios: list[float] = []
        sizes: list[int] = []

        def step(block: ModelBlock) -> None:
            scores = [wanda_score(layer.weight.detach(), inputs[layer].norm) for layer in block.layers]
            ratios.append(outlier_ratio(scores, self.params.m))
            sizes.append(sum(layer.weight.numel() for layer in block.layers))
            blocks.append(block)
            for layer in block.layers:
                inputs.pop(layer)

        blockwise(ctx, inputs.add, step, desc="owl: outlier ratios", changes_weights=False)
        sparsities = owl_sparsities(ratios, ctx.sparsity, self.params.lam, sizes)
        return {layer.name: s for block, s in zip(blocks, sparsities) for layer in block.layers}

    @property
    def pruner(self) -> Method:
        return self.base

    def prepare(self, ctx: PruneContext) -> PruneContext:
        return self.base.prepare(replace(ctx, layer_sparsity=self.layer_sparsities(ctx)))
