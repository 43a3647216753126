"""The generation contract: new rows together with where each came from.

Every generating augmentation (the "expand" stage: lsi, the vae-* samplers, multi-vae, vae-prior-gc, distill,
label-spread) returns a `Generated`; the few-shot cell trains on its rows, `python -m core augment` and the
pages' downloads write the same rows and their provenance, so what a user exports is what a cell trains on.

Provenance columns (one value per new row):
  source   row of the input the new row was made from (-1: none, e.g. a prior sample);
  partner  the second row of a two-source mix (lsi's other-class partner, a kNN neighbour; -1: none);
  lam      weight of `source` in a two-source mix, `partner` gets 1 - lam (kNN steps: 1 - step, or 1 + step
           away from the neighbour); NaN: no second source;
  step     the scale a latent sampler drew with (kNN step, noise sigma); NaN: none.
`origin` says which rows `source` / `partner` index: "input" (the x the method was given, i.e. the shots) or
"pool" (the unlabelled pool the method read: distill, label-spread); "mixed" when a combination holds both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ORIGINS = ("input", "pool", "mixed")   # mixed: a combination of both; indices not comparable


@dataclass(frozen=True)
class Generated:
    x: Tensor               # (M, *shape) the new inputs
    y_soft: Tensor          # (M, C) their soft labels
    source: Tensor          # (M,) int64
    partner: Tensor         # (M,) int64
    lam: Tensor             # (M,) float32
    step: Tensor            # (M,) float32
    origin: str = "input"

    def __post_init__(self):
        m = len(self.x)
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {self.origin!r}")
        for name in ("y_soft", "source", "partner", "lam", "step"):
            if len(getattr(self, name)) != m:
                raise ValueError(f"Generated.{name} has {len(getattr(self, name))} rows, x has {m}")

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def of(cls, x: Tensor, y_soft: Tensor, source=None, partner=None, lam=None, step=None,
           origin: str = "input") -> "Generated":
        """Rows with the provenance given; missing columns become -1 / NaN, a scalar step is broadcast."""
        m = len(x)

        def index(v):
            return torch.full((m,), -1, dtype=torch.long) if v is None else torch.as_tensor(v).long().cpu().reshape(m)

        def value(v):
            v = torch.full((), float("nan")) if v is None else torch.as_tensor(v, dtype=torch.float32).cpu()
            return v.expand(m).clone() if v.ndim == 0 else v.reshape(m)

        return cls(x, y_soft, index(source), index(partner), value(lam), value(step), origin)

    @classmethod
    def empty(cls, like_x: Tensor, like_y: Tensor) -> "Generated":
        return cls.of(like_x[:0], like_y[:0])

    def to(self, device, dtype=None) -> "Generated":
        """The rows (x, y_soft) on `device`; provenance stays on the CPU."""
        return Generated(self.x.to(device, dtype or self.x.dtype), self.y_soft.to(device), self.source,
                         self.partner, self.lam, self.step, self.origin)

    def appended_to(self, x: Tensor, y_soft: Tensor) -> tuple[Tensor, Tensor]:
        """(x followed by the new rows, y_soft followed by theirs): the registry's (x', y_soft') form."""
        return (torch.cat([x, self.x.to(x.device, x.dtype)]), torch.cat([y_soft, self.y_soft.to(y_soft.device,
                                                                                                y_soft.dtype)]))


def concat(parts: list[Generated]) -> Generated:
    """One Generated from several, in order. A later expander of a combination sees the earlier ones' rows
    appended to its input, so its input indices may point past the shots, at those rows."""
    if not parts:
        raise ValueError("concat needs at least one Generated")
    origins = {p.origin for p in parts if len(p)}
    origin = origins.pop() if len(origins) == 1 else "mixed" if origins else parts[0].origin
    return Generated(torch.cat([p.x for p in parts]), torch.cat([p.y_soft for p in parts]),
                     torch.cat([p.source for p in parts]), torch.cat([p.partner for p in parts]),
                     torch.cat([p.lam for p in parts]), torch.cat([p.step for p in parts]), origin)
