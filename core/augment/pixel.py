"""Pixel-level augmentations (seed 003), batched on the batch's device.

Each is ``fn(x, y_soft, rng, **params) -> (x', y_soft')``: x (B, C, H, W) images in [0, 1]
or (B, F) vectors, y_soft (B, K) rows summing to 1, rng a ``torch.Generator`` on x's device.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.device import derived_seed


def _uniform(shape, rng: torch.Generator, device, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=rng, device=device)


def beta_sample(rng: torch.Generator, alpha: float, n: int = 1) -> Tensor:
    """n draws of Beta(alpha, alpha) (CPU float tensor), reproducible from rng."""
    if alpha <= 0:
        raise ValueError(f"Beta(alpha, alpha) needs alpha > 0, got {alpha}")
    return torch.from_numpy(np.random.default_rng(derived_seed(rng)).beta(alpha, alpha, size=n).astype(np.float32))


def _partner(n: int, rng: torch.Generator, device) -> Tensor:
    return torch.randperm(n, generator=rng, device=device)


def classic(x: Tensor, y: Tensor, rng: torch.Generator, degrees: float = 10.0, translate: float = 0.1,
            scale: float = 0.1, noise: float = 0.05, flip: bool = False) -> tuple[Tensor, Tensor]:
    """Random rotation, translation (crop-and-pad), zoom and Gaussian noise; flips only if asked.

    Vectors get Gaussian noise only (their features have no geometry).
    """
    b = x.shape[0]
    if x.ndim == 2:
        return x + noise * torch.randn(x.shape, generator=rng, device=x.device), y
    angle = _uniform(b, rng, x.device, -degrees, degrees) * math.pi / 180        # (B,)
    zoom = _uniform(b, rng, x.device, 1 - scale, 1 + scale)                      # (B,)
    shift = _uniform((b, 2), rng, x.device, -2 * translate, 2 * translate)       # (B, 2) in [-1, 1] units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)            # (B, 2, 3)
    if flip:
        sign = torch.where(_uniform(b, rng, x.device) < 0.5, -1.0, 1.0)
        theta[:, :, 0] = theta[:, :, 0] * sign[:, None]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    if noise > 0:
        out = (out + noise * torch.randn(out.shape, generator=rng, device=x.device)).clamp(0, 1)
    return out, y


def _boxes(b: int, h: int, w: int, area: Tensor, rng: torch.Generator, device) -> Tensor:
    """Boolean masks (B, 1, H, W) of random boxes covering about `area` (B,) of the image, placed wholly
    inside it (so area 1 is the whole image and area 0 nothing)."""
    side_h = (h * area.sqrt()).round().clamp(0, h)
    side_w = (w * area.sqrt()).round().clamp(0, w)
    y0 = (_uniform(b, rng, device) * (h - side_h + 1)).floor().clamp(max=h - side_h)
    x0 = (_uniform(b, rng, device) * (w - side_w + 1)).floor().clamp(max=w - side_w)
    rows = torch.arange(h, device=device)[None, :]
    cols = torch.arange(w, device=device)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + side_h)[:, None])            # (B, H)
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + side_w)[:, None])            # (B, W)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]                  # (B, 1, H, W)


def cutout(x: Tensor, y: Tensor, rng: torch.Generator, area: float = 0.25, p: float = 1.0,
           value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Random erasing: a box covering `area` of each image (with probability p) is set to `value`.
    Vectors: a random `area` fraction of the features is set to `value`."""
    b = x.shape[0]
    apply = _uniform(b, rng, x.device) < p                                      # (B,)
    if x.ndim == 2:
        mask = (_uniform(x.shape, rng, x.device) < area) & apply[:, None]
    else:
        mask = _boxes(b, x.shape[2], x.shape[3], torch.full((b,), area, device=x.device), rng, x.device)
        mask = mask & apply[:, None, None, None]
    return x.masked_fill(mask, value), y


def mixup(x: Tensor, y: Tensor, rng: torch.Generator, alpha: float = 0.2,
          lam: float | None = None) -> tuple[Tensor, Tensor]:
    """x' = lam x + (1 - lam) x[perm], same for the soft labels; lam ~ Beta(alpha, alpha) per sample
    unless fixed (lam = 1 returns the batch, lam = 0 its shuffled partners)."""
    b = x.shape[0]
    perm = _partner(b, rng, x.device)
    lam_t = (torch.full((b,), float(lam)) if lam is not None else beta_sample(rng, alpha, b)).to(x.device, x.dtype)
    lx = lam_t.view(b, *([1] * (x.ndim - 1)))
    return lx * x + (1 - lx) * x[perm], lam_t[:, None] * y + (1 - lam_t[:, None]) * y[perm]


def cutmix(x: Tensor, y: Tensor, rng: torch.Generator, alpha: float = 1.0,
           lam: float | None = None) -> tuple[Tensor, Tensor]:
    """Paste a box of a shuffled partner covering (1 - lam) of the image; labels weighted by the
    pixel share actually pasted. Vectors: a random (1 - lam) share of the features is swapped."""
    b = x.shape[0]
    perm = _partner(b, rng, x.device)
    lam_t = (torch.full((b,), float(lam)) if lam is not None else beta_sample(rng, alpha, b)).to(x.device, x.dtype)
    if x.ndim == 2:
        mask = _uniform(x.shape, rng, x.device) < (1 - lam_t)[:, None]
    else:
        mask = _boxes(b, x.shape[2], x.shape[3], 1 - lam_t, rng, x.device)
    share = mask.flatten(1).float().mean(1).to(x.dtype)                         # (B,) pasted fraction
    out = torch.where(mask, x[perm], x)
    return out, (1 - share)[:, None] * y + share[:, None] * y[perm]


def label_smoothing(x: Tensor, y: Tensor, rng: torch.Generator, eps: float = 0.1) -> tuple[Tensor, Tensor]:
    """(1 - eps) y + eps / K (seed 003: eps = 0.1 is standard)."""
    if not 0 <= eps <= 1:
        raise ValueError(f"label smoothing eps must be in [0, 1], got {eps}")
    return x, (1 - eps) * y + eps / y.shape[1]


def tta_views(x: Tensor, n: int = 5, shift: int = 1, noise: float = 0.05) -> list[Tensor]:
    """Deterministic test-time views: the input and small shifts (images), or fixed small noise (vectors)."""
    views = [x]
    if x.ndim == 4:
        moves = [(shift, 0), (-shift, 0), (0, shift), (0, -shift), (shift, shift), (-shift, -shift)]
        for dy, dx in moves[: max(n - 1, 0)]:
            views.append(torch.roll(x, shifts=(dy, dx), dims=(2, 3)))
    else:
        g = torch.Generator(device=x.device).manual_seed(0)
        views += [x + noise * torch.randn(x.shape, generator=g, device=x.device) for _ in range(n - 1)]
    return views
