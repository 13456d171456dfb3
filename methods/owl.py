"""OWL: outlier-weighted layerwise sparsity (Yin et al., 2023, arXiv:2310.05175; ICML 2024).

Non-uniform sparsity across blocks, for any score-based method (``base``, Wanda by default):

1. a calibration pass over the dense model computes, for every block ``l``, its layerwise
   outlier distribution ``D_l``: the fraction of the block's weights whose Wanda score
   ``|W_ij|·‖X_j‖₂`` exceeds ``M`` times the mean score of the block (``M = m``, default 5);
2. ``D`` is min-max scaled to ``[0, 2λ]`` (``λ = lam``, default 0.08), centred on the
   target density: ``density_l = D̂_l − mean(D̂) + (1 − S)``, ``sparsity_l = 1 − density_l``,
   so blocks with more outliers are pruned less, every sparsity lies in ``[S−λ, S+λ]`` and
   their mean is the target ``S``;
3. ``base`` prunes with these per-layer sparsities (``PruneContext.layer_sparsity``).

Unstructured only: a hardware N:M pattern fixes every layer's sparsity, leaving nothing
to redistribute. With equal-sized blocks (decoder layers) the overall sparsity is ``S``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from sparsebench.adapters import Block
from sparsebench.calibration import blockwise
from sparsebench.errors import InvalidSpecError
from sparsebench.masks import Masks
from sparsebench.method import Method, MethodMeta, PruneContext, ScoreMethod, methods
from sparsebench.patterns import Unstructured
from sparsebench.stats import StatsByLayer

from .wanda import wanda_score


@dataclass(frozen=True)
class OWLParams:
    base: str = "wanda"  # the score-based method that prunes with OWL's layer sparsities
    m: float = 5.0  # outlier threshold, as a multiple of the block's mean score
    lam: float = 0.08  # λ: largest deviation of a block's sparsity from the target

    def __post_init__(self) -> None:
        if self.m <= 0 or not 0 <= self.lam < 1:
            raise ValueError(f"owl needs m > 0 and 0 <= lam < 1, got m={self.m}, lam={self.lam}")


def outlier_ratio(scores: list[torch.Tensor], m: float) -> float:
    """Fraction of all ``scores`` (one block's layers) above ``m`` × their mean."""
    flat = torch.cat([s.flatten().float() for s in scores])
    return float((flat > m * flat.mean()).float().mean())


def owl_sparsities(ratios: list[float], sparsity: float, lam: float) -> list[float]:
    """Per-block sparsities from outlier ratios: mean ``sparsity``, within ``±lam``, fewer outliers → sparser."""
    d = torch.tensor(ratios, dtype=torch.float64)
    spread = d.max() - d.min()
    scaled = (d - d.min()) / spread * (2 * lam) if spread > 0 else torch.zeros_like(d)
    density = scaled - scaled.mean() + (1 - sparsity)
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
        blocks: list[Block] = []
        ratios: list[float] = []

        def step(block: Block) -> None:
            scores = [wanda_score(layer.weight.detach(), inputs[layer].norm) for layer in block.layers]
            ratios.append(outlier_ratio(scores, self.params.m))
            blocks.append(block)
            for layer in block.layers:
                inputs.pop(layer)

        blockwise(ctx, inputs.add, step, desc="owl: outlier ratios", changes_weights=False)
        sparsities = owl_sparsities(ratios, ctx.sparsity, self.params.lam)
        return {layer.name: s for block, s in zip(blocks, sparsities) for layer in block.layers}

    def prune(self, ctx: PruneContext) -> Masks:
        self.check_pattern(ctx.pattern)
        ctx = replace(ctx, layer_sparsity=self.layer_sparsities(ctx))
        if not self.base.meta.needs_calibration:
            ctx = replace(ctx, calibration=None)
        return self.base.prune(ctx)
