"""Per-input-feature statistics of a layer's calibration inputs, shared by the methods.

Pure accumulation, no hooks: the calibration driver calls a method's ``observe(layer, x)``
and the method adds ``x`` here. Sums run over every calibration token; ``sequences``
counts the ``observe`` calls (one per calibration sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .adapters import PrunableLayer


@dataclass
class InputStats:
    """Running sums over the rows of a layer's inputs ``X`` (tokens × in features).

    ``Σ x²`` (float32) is always kept; the float64 first and second moments behind
    :attr:`mean` and :attr:`var` only when asked for (``moments``): they cost about twenty
    times more per calibration sequence and only some methods (DSnoT) use them.
    """

    sq: torch.Tensor  # Σ_t x_tj², float32 [in]
    total: torch.Tensor | None = None  # Σ_t x_tj, float64 [in] (with moments)
    sq64: torch.Tensor | None = None  # Σ_t x_tj², float64 [in] (with moments, for the variance)
    tokens: int = 0
    sequences: int = 0

    @classmethod
    def empty(cls, features: int, device: torch.device, moments: bool = False) -> InputStats:
        def z64() -> torch.Tensor | None:
            return torch.zeros(features, dtype=torch.float64, device=device) if moments else None

        return cls(torch.zeros(features, device=device), z64(), z64())

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1])
        xf = x.float()
        self.sq += (xf * xf).sum(0)
        if self.total is not None and self.sq64 is not None:
            x64 = x.double()
            self.total += x64.sum(0)
            self.sq64 += (x64 * x64).sum(0)
        self.tokens += x.shape[0]
        self.sequences += 1

    @property
    def norm(self) -> torch.Tensor:
        """‖X_j‖₂ over all calibration tokens, per input feature."""
        return self.sq.sqrt()

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.total is None or self.sq64 is None:
            raise RuntimeError("these input statistics were kept without moments; use StatsByLayer(moments=True)")
        return self.total, self.sq64

    @property
    def sum(self) -> torch.Tensor:
        """Σ_t x_tj over all calibration tokens, float64 (needs moments)."""
        return self._moments()[0]

    @property
    def mean(self) -> torch.Tensor:
        total, _ = self._moments()
        return (total / max(self.tokens, 1)).float()

    @property
    def var(self) -> torch.Tensor:
        """Population variance of each input feature over all calibration tokens."""
        total, sq64 = self._moments()
        n = max(self.tokens, 1)
        return (sq64 / n - (total / n) ** 2).clamp_min(0).float()


@dataclass
class StatsByLayer:
    """``InputStats`` per layer name, created on first sight, dropped with :meth:`pop`."""

    moments: bool = False  # also keep the float64 sums behind InputStats.mean / .var
    stats: dict[str, InputStats] = field(default_factory=dict)

    def add(self, layer: PrunableLayer, x: torch.Tensor) -> None:
        s = self.stats.get(layer.name)
        if s is None:
            s = self.stats[layer.name] = InputStats.empty(x.shape[-1], x.device, self.moments)
        s.add(x)

    def __getitem__(self, layer: PrunableLayer) -> InputStats:
        try:
            return self.stats[layer.name]
        except KeyError:
            raise RuntimeError(f"no calibration inputs were observed for {layer.name}") from None

    def pop(self, layer: PrunableLayer) -> None:
        self.stats.pop(layer.name, None)
