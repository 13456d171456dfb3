"""LLM-Pruner's first-order group importance (Ma, Fang & Wang, 2023, arXiv:2305.11627).

Importance of a coupled group (an attention head with its rows of q/k/v and its columns of
o; an MLP channel with its rows of gate/up and its column of down)::

    I = Σ_{w ∈ group} |w · ∂L/∂w|

the first-order Taylor estimate of the loss change when the group is removed, with ``∂L/∂w``
the gradient of the language-modelling loss summed over the calibration sequences (the dense
model). For grouped-query attention a KV head's k and v rows join its group. The lowest groups
go, the same number in every block.

LLM-Pruner follows pruning with a LoRA recovery step; it is **not** run here: the pruned model
is evaluated as pruned, like every other method on the leaderboard.
"""

from __future__ import annotations

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.patterns import Channels, Heads
from sparsebench.pruning import Method, MethodMeta, PruneContext, methods


@methods.register("llm-pruner")
class LLMPruner(Method):
    """``Σ |w·∂L/∂w|`` over each head's / channel's coupled weights (no LoRA recovery)."""

    meta = MethodMeta(
        "remove the heads / MLP channels of lowest first-order Taylor importance Σ|w·∂L/∂w| (no LoRA recovery)",
        paper="arXiv:2305.11627", citation="Ma et al., 2023",
        needs_calibration=True, needs_gradients=True, patterns=(Heads, Channels),
    )

    def __init__(self, params=None):
        super().__init__(params)
        self.grads: dict[str, torch.Tensor] = {}

    def observe_gradient(self, ctx: PruneContext, layer: PrunableLayer, grad: torch.Tensor) -> None:
        g = grad.detach().float()
        acc = self.grads.get(layer.name)
        self.grads[layer.name] = g.clone() if acc is None else acc.add_(g)

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        if layer.name not in self.grads:
            raise RuntimeError(f"no gradients were observed for {layer.name}")
        return (layer.weight.detach().float() * self.grads[layer.name].to(layer.weight.device)).abs()

    def release(self, ctx: PruneContext, layer: PrunableLayer) -> None:
        self.grads.pop(layer.name, None)
