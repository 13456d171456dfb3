"""Mask selection and verification: the only place that turns scores into zeros.

A mask is a bool tensor shaped like the weight (``[out, in]`` orientation), ``True`` =
keep. Methods produce scores (higher = more important); :func:`select_mask` picks the
mask for any pattern within a layer (:func:`select_global` across layers, by the same
rule); :func:`verify` checks the result on every run before evaluation.

How many scores an unstructured selection drops is its threshold rule: ``exact`` drops
``round(sparsity * n)``; ``reference`` drops every score at or below ``sorted[int(sparsity * n)]``,
i.e. ``int(sparsity * n) + 1`` plus ties (the SparseGPT reference code's rule).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

from .errors import InvalidSpecError, VerificationError
from .patterns import NM, Block, Group, Pattern, Unstructured, fits

Masks = dict[str, torch.Tensor]
Threshold = Literal["exact", "reference"]


def _drop_lowest(scores: torch.Tensor, count: int, dim: int | None = None, at_or_below: bool = False) -> torch.Tensor:
    """Mask (True = keep) without the ``count`` lowest scores (along ``dim``, or over all);
    with ``at_or_below``, without every score at or below the one at sorted index ``count``.

    The one rule that decides which weights go, used by every selection below.
    """
    if at_or_below:
        flat = scores.flatten() if dim is None else scores
        kth = torch.kthvalue(flat, count + 1, dim=-1 if dim is None else dim, keepdim=dim is not None).values
        return scores > kth
    mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    if count <= 0:
        return mask
    if dim is None:
        idx = torch.topk(scores.flatten(), count, largest=False, sorted=False).indices
        mask.view(-1)[idx] = False
    else:
        idx = torch.topk(scores, count, dim=dim, largest=False, sorted=False).indices
        mask.scatter_(dim, idx, False)
    return mask


def select_mask(scores: torch.Tensor, pattern: Pattern, sparsity: float, group: Group = Group.LAYER,
                threshold: Threshold = "exact") -> torch.Tensor:
    """Keep the highest scores of a 2-D ``[out, in]`` score matrix under ``pattern``.

    Unstructured: the lowest ``sparsity`` fraction of the ``group`` goes (the whole layer,
    or each output row; for ``global`` see :func:`select_global`), counted by the
    ``threshold`` rule (module docstring). N:M drops the lowest ``m - n`` of every ``m``
    consecutive inputs; blocks compete by their summed score within the layer. The
    pattern's shape rule is checked first.
    """
    if threshold not in ("exact", "reference"):
        raise InvalidSpecError(f"threshold rule must be 'exact' or 'reference', got {threshold!r}")
    if threshold == "reference" and not isinstance(pattern, Unstructured):
        raise InvalidSpecError(f"the reference threshold rule selects unstructured masks, not {pattern}")
    if scores.dim() != 2:
        raise InvalidSpecError(f"scores must be 2-D [out, in], got shape {tuple(scores.shape)}")
    pattern.check_shape(tuple(scores.shape))
    scores = scores.float().contiguous()
    rows, cols = scores.shape
    if isinstance(pattern, NM):
        grouped = scores.reshape(rows, cols // pattern.m, pattern.m)
        return _drop_lowest(grouped, pattern.m - pattern.n, dim=-1).reshape(rows, cols)
    if isinstance(pattern, Block):
        r, c = pattern.rows, pattern.cols
        tiles = scores.reshape(rows // r, r, cols // c, c).sum(dim=(1, 3))
        keep = _drop_lowest(tiles, round(sparsity * tiles.numel()))
        return keep.repeat_interleave(r, 0).repeat_interleave(c, 1)
    reference = threshold == "reference"
    if group is Group.ROW:
        return _drop_lowest(scores, int(cols * sparsity) if reference else round(sparsity * cols), dim=1, at_or_below=reference)
    if group is Group.LAYER:
        n = scores.numel()
        return _drop_lowest(scores, int(n * sparsity) if reference else round(sparsity * n), at_or_below=reference)
    raise ValueError(f"select_mask selects within one layer; group {group} spans layers (use select_global)")


def select_global(scores: Mapping[str, torch.Tensor], sparsity: float) -> Masks:
    """Unstructured masks with one threshold across all layers (exactly ``sparsity`` overall):
    :func:`select_mask`'s layer rule over every layer's scores side by side."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().float().flatten().cpu() for n in names]).unsqueeze(0)
    keep = select_mask(flat, Unstructured(), sparsity, Group.LAYER)[0]
    out: Masks = {}
    offset = 0
    for n in names:
        numel = scores[n].numel()
        out[n] = keep[offset : offset + numel].reshape(scores[n].shape).to(scores[n].device)
        offset += numel
    return out


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class LayerReport:
    """One targeted layer after pruning: its size, the zeros the method accounts for
    (``pruned``), every zero it holds (``zeros``) and its own zeros before pruning."""

    name: str
    numel: int
    pruned: int
    zeros: int
    own_zeros: int = 0

    @property
    def sparsity(self) -> float:
        """The method's sparsity of this layer (``pruned / numel``)."""
        return self.pruned / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class MaskReport:
    """What verification measured: the method's achieved sparsity, the weights' own zeros
    before pruning and every zero after it (fractions of the targeted weights), and the
    pattern checks."""

    pattern: str
    target_sparsity: float
    achieved_sparsity: float
    own_sparsity: float
    total_sparsity: float
    layers: tuple[LayerReport, ...]
    nm_valid: bool | None
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def own_zeros(weights: Mapping[str, torch.Tensor]) -> Masks:
    """Where each weight is exactly zero before pruning (``True`` = zero), for the layers that hold any.

    Trained fp16/fp32 checkpoints hold almost none; dequantized ones hold many (the Q4_K_M
    Gemma 3 270M: 4.55% of its weights), and :func:`verify` must not credit them to a method.
    Taken once before pruning; layers without a zero cost no memory.
    """
    out: Masks = {}
    for name, w in weights.items():
        zero = w.detach() == 0
        if bool(zero.any()):
            out[name] = zero.cpu()
    return out


def nm_valid(mask: torch.Tensor, pattern: NM) -> bool:
    """Every group of ``m`` consecutive inputs of every row keeps at most ``n``."""
    if not fits(pattern, tuple(mask.shape)):
        return False
    rows, cols = mask.shape
    return bool((mask.reshape(rows, cols // pattern.m, pattern.m).sum(-1) <= pattern.n).all())


def block_valid(mask: torch.Tensor, pattern: Block) -> bool:
    """Every ``rows × cols`` tile is either all kept or all zero."""
    if not fits(pattern, tuple(mask.shape)):
        return False
    r, c = pattern.rows, pattern.cols
    rows, cols = mask.shape
    kept = mask.reshape(rows // r, r, cols // c, c).sum(dim=(1, 3))
    return bool(((kept == 0) | (kept == r * c)).all())


def verify(
    weights: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    pattern: Pattern,
    sparsity: float,
    targeted: Iterable[str],
    tolerance: float = 0.005,
    *,
    own: Mapping[str, torch.Tensor] | None = None,
) -> MaskReport:
    """Check pruned ``weights`` (``[out, in]``) against ``masks``, ``pattern`` and ``sparsity``.

    ``own`` holds the weights' exact zeros before pruning (:func:`own_zeros`). The zeros a
    method accounts for are every weight its mask removes (an own zero it removed is a weight
    its budget chose) and every other weight it turned to zero; an own zero its mask keeps (or
    in a layer it left unmasked) stays the weights' own and is reported apart. So a dense
    baseline of a model with own zeros achieves 0, and a 50% mask achieves 0.5 whichever
    weights it keeps.

    - masks only name targeted layers, and every masked-out weight is really zero;
    - achieved sparsity (the method's zeros in the targeted weights) is within ``tolerance`` of the target;
    - N:M is valid in every group of every layer and blocks are whole, counting the own zeros a
      mask keeps as kept.
    """
    targeted = set(targeted)
    own = own or {}
    problems: list[str] = []
    stray = sorted(set(masks) - targeted)
    if stray:
        problems.append(f"masks for layers that are not targeted: {', '.join(stray[:5])}")
    reports, nm_ok = [], None if not isinstance(pattern, NM) else True
    for name in sorted(targeted):
        w = weights[name]
        zero = w == 0
        m = masks[name].to(w.device) if name in masks else None
        if m is not None and m.shape != w.shape:
            problems.append(f"{name}: mask shape {tuple(m.shape)} != weight shape {tuple(w.shape)}")
            continue
        was_zero = own[name].to(w.device) if name in own else None
        kept_own = None if was_zero is None else (was_zero if m is None else was_zero & m)
        pruned = zero if kept_own is None else zero & ~kept_own
        reports.append(LayerReport(name, w.numel(), int(pruned.sum()), int(zero.sum()),
                                   0 if was_zero is None else int(was_zero.sum())))
        if m is not None and bool((~m & ~zero).any()):
            problems.append(f"{name}: weights outside the mask are not zero")
        if isinstance(pattern, NM) and not nm_valid(~pruned, pattern):
            nm_ok = False
            problems.append(f"{name}: not {pattern} (a group of {pattern.m} keeps more than {pattern.n})")
        if isinstance(pattern, Block) and not block_valid(~pruned, pattern):
            problems.append(f"{name}: not {pattern} (a tile is partly zero)")
    total = sum(r.numel for r in reports)

    def fraction(count: int) -> float:
        return count / total if total else 0.0

    achieved = fraction(sum(r.pruned for r in reports))
    if abs(achieved - sparsity) > tolerance:
        problems.append(f"achieved sparsity {achieved:.4f} is not within {tolerance} of the target {sparsity:.4f}"
                        + (f" (the weights' own zeros, {fraction(sum(r.own_zeros for r in reports)):.4f}, are not counted)"
                           if own else ""))
    return MaskReport(str(pattern), sparsity, achieved, fraction(sum(r.own_zeros for r in reports)),
                      fraction(sum(r.zeros for r in reports)), tuple(reports), nm_ok, tuple(problems))


def require(report: MaskReport) -> MaskReport:
    """Raise :class:`VerificationError` listing the problems, or return the report."""
    if not report.ok:
        raise VerificationError("mask verification failed: " + "; ".join(report.problems[:3]))
    return report


def fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """Exact content hash of tensors, used to prove that untargeted parameters did not change."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(name.encode())
        h.update(t.contiguous().cpu().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
