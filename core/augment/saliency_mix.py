"""SaliencyMix (Uddin et al. 2021): CutMix whose box is centred on the most salient point of the source.

The source image's saliency comes from a cheap static detector — no classifier in the loop:
spectral residual (Hou & Zhang 2007, what SaliencyMix uses via OpenCV's static saliency) or the
gradient magnitude. The source patch is pasted at the same place in the target, the box clipped
at the image border as in the paper, and the labels are weighted by the pixel share actually pasted
(so a clipped box gives the source less weight, as in CutMix).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augment.pixel import beta_sample, cutmix

SALIENCY_KINDS = ("spectral-residual", "gradient")


def _blur(s: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, 1, H, W) maps, reflect-padded (kernel radius ~ 2 sigma, at least 1)."""
    r = max(1, int(round(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=s.dtype, device=s.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    pad_h, pad_w = min(r, s.shape[2] - 1), min(r, s.shape[3] - 1)
    s = F.pad(s, (0, 0, pad_h, pad_h), mode="reflect") if pad_h else s
    s = F.conv2d(s, k.view(1, 1, -1, 1)[:, :, r - pad_h: r + pad_h + 1])
    s = F.pad(s, (pad_w, pad_w, 0, 0), mode="reflect") if pad_w else s
    return F.conv2d(s, k.view(1, 1, 1, -1)[:, :, :, r - pad_w: r + pad_w + 1])


def static_saliency(x: Tensor, kind: str = "spectral-residual") -> Tensor:
    """Saliency maps (B, H, W) of images x (B, C, H, W), larger = more salient; channels are averaged first.

    spectral-residual: the log-amplitude spectrum minus its 3x3 local average, recombined with the phase
    and transformed back; squared and smoothed. gradient: the Sobel gradient magnitude, smoothed."""
    if kind not in SALIENCY_KINDS:
        raise ValueError(f"saliency kind must be one of {SALIENCY_KINDS}, got {kind!r}")
    g = x.float().mean(1, keepdim=True)                                         # (B, 1, H, W)
    sigma = max(0.5, min(g.shape[2], g.shape[3]) / 16)                          # ~1.75 px at 28 px, 0.5 at 8
    if kind == "gradient":
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
        kernels = torch.stack([sobel, sobel.T])[:, None]                        # (2, 1, 3, 3)
        d = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kernels)        # (B, 2, H, W)
        return _blur(d.pow(2).sum(1, keepdim=True).sqrt(), sigma)[:, 0]
    spec = torch.fft.fft2(g)
    log_amp = torch.log(spec.abs() + 1e-8)
    residual = log_amp - F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    back = torch.fft.ifft2(torch.exp(residual + 1j * torch.angle(spec)))
    return _blur(back.abs().pow(2), sigma)[:, 0]


def most_salient_point(x: Tensor, kind: str = "spectral-residual") -> tuple[Tensor, Tensor]:
    """(row, col) (B,) of each image's saliency maximum (the first one in row-major order on ties)."""
    s = static_saliency(x, kind)                                                # (B, H, W)
    flat = s.flatten(1).argmax(1)
    return flat // s.shape[2], flat % s.shape[2]


def centred_boxes(h: int, w: int, area: Tensor, cy: Tensor, cx: Tensor) -> Tensor:
    """Boolean masks (B, 1, H, W) of boxes of about `area` (B,) of the image centred on (cy, cx),
    clipped at the border (so near an edge they cover less)."""
    side_h = (h * area.clamp(0, 1).sqrt()).round().long()
    side_w = (w * area.clamp(0, 1).sqrt()).round().long()
    y0, x0 = cy - side_h // 2, cx - side_w // 2
    rows = torch.arange(h, device=cy.device)[None, :]
    cols = torch.arange(w, device=cy.device)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + side_h)[:, None])          # (B, H)
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + side_w)[:, None])          # (B, W)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]                 # (B, 1, H, W)


def saliency_mix(x: Tensor, y: Tensor, rng: torch.Generator, alpha: float = 1.0, lam: float | None = None,
                 saliency: str = "spectral-residual") -> tuple[Tensor, Tensor]:
    """Paste a box of a shuffled partner (the source), of area (1 - lam) and centred on the source's most
    salient pixel, into each image at the same place; labels weighted by the pixel share actually pasted.
    lam ~ Beta(alpha, alpha) per sample unless fixed. Vectors have no geometry: plain CutMix."""
    if x.ndim == 2:
        return cutmix(x, y, rng, alpha=alpha, lam=lam)
    b, _, h, w = x.shape
    perm = torch.randperm(b, generator=rng, device=x.device)
    lam_t = (torch.full((b,), float(lam)) if lam is not None else beta_sample(rng, alpha, b)).to(x.device, x.dtype)
    cy, cx = most_salient_point(x, saliency)                                    # of every image; partners below
    mask = centred_boxes(h, w, 1 - lam_t, cy[perm], cx[perm])
    share = mask.flatten(1).float().mean(1).to(x.dtype)                         # (B,) pasted fraction
    out = torch.where(mask, x[perm], x)
    return out, (1 - share)[:, None] * y + share[:, None] * y[perm]
