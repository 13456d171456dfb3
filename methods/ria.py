"""RIA: relative importance and activations (Zhang, Bai, Lin, Zhao, Hou & Cannistraci, ICLR 2024,
"Plug-and-Play: An Efficient Post-training Pruning Method for Large Language Models").

Score of weight ``W_ij`` (output ``i``, input ``j``)::

    S_ij = ( |W_ij| / Σ_k |W_kj|  +  |W_ij| / Σ_k |W_ik| ) · ‖X_j‖₂^a

- the first factor is the *relative importance*: the weight's share of its input channel
  ``j`` (column sum over all outputs) plus its share of its output row ``i``, so channels
  and rows with uniformly large weights no longer absorb the whole budget;
- ``‖X_j‖₂`` is the l2 norm of input feature ``j`` over all calibration tokens (with the
  earlier blocks already pruned), and ``a`` (``a``, default 0.5 as in the paper) softens
  the activations' influence compared with Wanda's ``a = 1``.

Unstructured scores compete within the whole layer (the paper's default; the reference
code's ``per_outneuron`` switch is off by default); N:M picks the top ``n`` of every ``m``
consecutive inputs. No weight is updated. The paper's optional channel permutation for
N:M is not part of this method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.adapters import PrunableLayer
from sparsebench.params import param
from sparsebench.patterns import Group
from sparsebench.pruning import InputStatsMethod, MethodMeta, PruneContext, methods


@dataclass(frozen=True)
class RIAParams:
    a: float = param(0.5, ge=0)  # exponent of the input norm ‖X_j‖₂


def ria_score(weight: torch.Tensor, input_norm: torch.Tensor, a: float = 0.5) -> torch.Tensor:
    """Relative importance × ``‖X_j‖₂^a`` for an ``[out, in]`` weight and ``[in]`` input norms."""
    w = weight.abs().float()
    tiny = torch.finfo(torch.float32).tiny  # an all-zero row or column scores 0, not NaN
    relative = w / w.sum(0, keepdim=True).clamp_min(tiny) + w / w.sum(1, keepdim=True).clamp_min(tiny)
    return relative * input_norm.reshape(1, -1).float().pow(a)


@methods.register("ria")
class RIA(InputStatsMethod):
    """``S_ij = (|W_ij|/Σ_k|W_kj| + |W_ij|/Σ_k|W_ik|) · ‖X_j‖₂^a``, compared within each layer."""

    Params = RIAParams
    meta = MethodMeta(
        "relative importance of |W| in its row and column, times ‖X‖₂^a",
        paper="ICLR 2024", citation="Zhang et al., 2024",
        needs_calibration=True, group=Group.LAYER,
    )

    def score(self, ctx: PruneContext, layer: PrunableLayer) -> torch.Tensor:
        return ria_score(layer.weight.detach(), self.inputs[layer].norm, self.params.a)
