"""ShortGPT: remove the least influential blocks (Men et al., 2024, arXiv:2403.03853).

Block Influence of block ``i`` on the calibration tokens::

    BI_i = 1 − mean_t cos(x_i,t, x_i+1,t)

where ``x_i,t`` is block ``i``'s input hidden state at token ``t`` and ``x_i+1,t`` its output,
averaged over every token of every calibration sequence (the dense model, one read-only pass).
A block whose output is nearly its input changes little; the blocks with the lowest BI are
removed, as many as the target fraction of blocks asks (``--pattern depth``). No weight is
updated and nothing is retrained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparsebench.calibration import block_outputs, calibration_tokens
from sparsebench.patterns import Depth
from sparsebench.pruning import Method, MethodMeta, PruneContext, methods


def block_influence(x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """Sum over tokens of ``1 − cos(x_t, y_t)`` for hidden states ``[..., hidden]``, and the token count."""
    bi = 1.0 - F.cosine_similarity(x.float(), y.float(), dim=-1)
    return float(bi.sum()), bi.numel()


@methods.register("shortgpt")
class ShortGPT(Method):
    """Block Influence ``1 − cos(block input, block output)`` averaged over calibration tokens; the lowest go."""

    meta = MethodMeta(
        "remove the blocks of lowest Block Influence 1 − cos(input, output)",
        paper="arXiv:2403.03853", citation="Men et al., 2024",
        needs_calibration=True, patterns=(Depth,), unit_scores="blocks",
    )

    def score_blocks(self, ctx: PruneContext) -> torch.Tensor:
        totals: dict[int, list[float]] = {}

        def visit(block, x: torch.Tensor, y: torch.Tensor) -> None:
            s, n = block_influence(x, y)
            acc = totals.setdefault(block.index, [0.0, 0])
            acc[0] += s
            acc[1] += n

        block_outputs(ctx, calibration_tokens(ctx), visit, desc="shortgpt: block influence")
        return torch.tensor([totals[i][0] / totals[i][1] for i in sorted(totals)], dtype=torch.float64)
