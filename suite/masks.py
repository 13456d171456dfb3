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
    name: str
    numel: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class MaskReport:
    """What verification measured: achieved sparsity and the pattern checks."""

    pattern: str
    target_sparsity: float
    achieved_sparsity: float
    layers: tuple[LayerReport, ...]
    nm_valid: bool | None
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


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
) -> MaskReport:
    """Check pruned ``weights`` (``[out, in]``) against ``masks``, ``pattern`` and ``sparsity``.

    - masks only name targeted layers, and every masked-out weight is really zero;
    - achieved sparsity (zeros in the targeted weights) is within ``tolerance`` of the target;
    - N:M is valid in every group of every layer; blocks are whole.
    """
    targeted = set(targeted)
    problems: list[str] = []
    stray = sorted(set(masks) - targeted)
    if stray:
        problems.append(f"masks for layers that are not targeted: {', '.join(stray[:5])}")
    reports, nm_ok = [], None if not isinstance(pattern, NM) else True
    for name in sorted(targeted):
        w = weights[name]
        zero = w == 0
        reports.append(LayerReport(name, w.numel(), int(zero.sum())))
        if name in masks:
            m = masks[name].to(w.device)
            if m.shape != w.shape:
                problems.append(f"{name}: mask shape {tuple(m.shape)} != weight shape {tuple(w.shape)}")
                continue
            if bool((~m & ~zero).any()):
                problems.append(f"{name}: weights outside the mask are not zero")
        if isinstance(pattern, NM) and not nm_valid(~zero, pattern):
            nm_ok = False
            problems.append(f"{name}: not {pattern} (a group of {pattern.m} keeps more than {pattern.n})")
        if isinstance(pattern, Block) and not block_valid(~zero, pattern):
            problems.append(f"{name}: not {pattern} (a tile is partly zero)")
    total = sum(r.numel for r in reports)
    achieved = sum(r.zeros for r in reports) / total if total else 0.0
    if abs(achieved - sparsity) > tolerance:
        problems.append(f"achieved sparsity {achieved:.4f} is not within {tolerance} of the target {sparsity:.4f}")
    return MaskReport(str(pattern), sparsity, achieved, tuple(reports), nm_ok, tuple(problems))


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
