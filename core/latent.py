"""Latent-space maths: encode / decode a dataset, interpolation and extrapolation, LSI labels,
and the Bonn-slides samplers (noise, kNN inter/extrapolation, prior samples).

Everything here is batched tensor maths on tensors you pass in. Latents come back as float32 on
the CPU (they are small and the app, projections and samplers all want them there).

Notation (seed 002): alpha is a *standard deviation* for the noise and prior samplers, i.e. the
slides' N(0, alpha) is read as N(0, alpha^2 I); for kNN it is the step along mu(x_k) - mu(x_i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.device import derived_generator

__all__ = [
    "LatentSamples",
    "encode_dataset",
    "decode_latents",
    "interpolate_latent",
    "mixup_pixels",
    "lsi_soft_label",
    "sample_noise",
    "knn_interpolate",
    "sample_prior",
    "prior_sample",
]


# ----------------------------------------------------------------------------- encode / decode

def _model_device(model: torch.nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _as_tensor(x) -> Tensor:
    x = getattr(x, "x", x)  # accept a core.data.Dataset as well as a tensor
    return x if isinstance(x, Tensor) else torch.as_tensor(x)


def _batched(model: torch.nn.Module, fn, x: Tensor, batch_size: int, on_device: bool = False) -> Tensor:
    """fn over x in chunks on the model's device -> float32 on the CPU, or on the model's device with
    on_device=True (a caller that goes on computing there: no device -> host -> device round trip)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = _model_device(model)
    out_device = device if on_device else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [fn(chunk.to(device, torch.float32)).float().to(out_device) for chunk in x.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def encode_dataset(model: torch.nn.Module, x, batch_size: int = 1024, on_device: bool = False) -> Tensor:
    """x (N, *input_shape) tensor or Dataset -> z (N, d) float32 on the CPU (VAE: the mean mu); on the model's
    device with on_device=True.

    Runs in eval mode without gradients, batched on the model's device; the model's train/eval
    mode is restored afterwards."""
    x = _as_tensor(x)
    z = _batched(model, model.encode, x, batch_size, on_device)
    if not len(x):
        return torch.empty(0, model.latent_dim, device=_model_device(model) if on_device else "cpu")
    return z.reshape(len(x), -1)


def latents_job(checkpoint: str | bytes, dataset: str) -> np.ndarray:
    """encode_dataset as an executor job (a worker process, not the web server), from plain arguments:
    `checkpoint` a checkpoint folder's path or a zipped checkpoint's bytes (an upload), `dataset` a core.data
    spec. -> (N, d) float32 latents (VAE: means)."""
    from core.checkpoints import load_checkpoint, load_checkpoint_zip
    from core.data import load_dataset

    load = load_checkpoint_zip if isinstance(checkpoint, (bytes, bytearray)) else load_checkpoint
    return encode_dataset(load(checkpoint, device="cpu").model, load_dataset(dataset)).numpy()


def decode_latents(model: torch.nn.Module, z, batch_size: int = 1024, on_device: bool = False) -> Tensor:
    """z (N, d) -> x (N, *input_shape) float32 on the CPU (images: in [0, 1]); on the model's device with
    on_device=True."""
    z = _as_tensor(z).reshape(-1, model.latent_dim)
    return _batched(model, model.decode, z, batch_size, on_device)


# ----------------------------------------------------------------------------- interpolation

def _lambdas(lambdas) -> Tensor:
    lam = torch.as_tensor(lambdas, dtype=torch.float32)
    return lam.reshape(1) if lam.dim() == 0 else lam


def interpolate_latent(z0: Tensor, z1: Tensor, lambdas, mode: str = "linear") -> Tensor:
    """Points on the path from z0 to z1.

    z0, z1 (d,) and lambdas (T,) -> (T, d): one path at T positions.
    z0, z1 (B, d) and lambdas (B,) -> (B, d): one position per pair (batched LSI).
    lambda = 0 gives z0 exactly, 1 gives z1 exactly; values outside [0, 1] extrapolate.
    mode "linear": (1 - lam) z0 + lam z1.  mode "slerp": along the great circle between the two
    directions (White 2016), falling back to linear where the vectors are (anti)parallel or zero.
    """
    if mode not in ("linear", "slerp"):
        raise ValueError(f"mode must be 'linear' or 'slerp', got {mode!r}")
    z0 = torch.as_tensor(z0, dtype=torch.float32)
    z1 = torch.as_tensor(z1, dtype=torch.float32).to(z0.device)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    lam = _lambdas(lambdas).to(z0.device)[:, None]  # (T, 1) or (B, 1)
    linear = (1 - lam) * z0 + lam * z1  # exact at lam = 0 and 1
    if mode == "linear":
        return linear
    n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)  # () or (B, 1)
    cos = ((z0 * z1).sum(-1, keepdim=True) / (n0 * n1).clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    degenerate = (so.abs() < 1e-6) | (n0 < 1e-12) | (n1 < 1e-12)
    safe = torch.where(degenerate, torch.ones_like(so), so)
    # sin((1-lam) w)/sin w and sin(lam w)/sin w are exactly 1 and 0 (or 0 and 1) at the ends.
    slerp = torch.sin((1 - lam) * omega) / safe * z0 + torch.sin(lam * omega) / safe * z1
    return torch.where(degenerate, linear, slerp)


def mixup_pixels(x0: Tensor, x1: Tensor, lambdas) -> Tensor:
    """Pixel-level mixup of the same pair: x0, x1 (*shape), lambdas (T,) -> (T, *shape).

    Same convention as interpolate_latent ((1 - lam) x0 + lam x1). Not clamped: extrapolated
    images may leave [0, 1]; image_grid clips for display."""
    x0 = torch.as_tensor(x0, dtype=torch.float32)
    x1 = torch.as_tensor(x1, dtype=torch.float32).to(x0.device)
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    lam = _lambdas(lambdas).to(x0.device).reshape(-1, *([1] * x0.dim()))  # (T, 1, ..., 1)
    return (1 - lam) * x0 + lam * x1


def lsi_soft_label(y0, y1, lambdas, n_classes: int) -> Tensor:
    """LSI label of (1 - lam) z0 + lam z1: (1 - w) on y0 and w on y1 -> (T, C), rows sum to 1.

    y0, y1: class ids, ints or tensors broadcastable to (T,). lam = 0.5 gives the two-hot
    0.5 / 0.5 label (one-hot 1.0 when y0 == y1). Extrapolation: w = clamp(lam, 0, 1), so a
    point beyond z1 (lam > 1) is labelled fully y1 and one before z0 (lam < 0) fully y0: a
    label weight outside [0, 1] would be a negative probability."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    w = _lambdas(lambdas).clamp(0.0, 1.0)  # (T,)
    y0 = torch.as_tensor(y0, dtype=torch.long).expand_as(w)
    y1 = torch.as_tensor(y1, dtype=torch.long).expand_as(w)
    if (torch.cat([y0, y1]) < 0).any() or (torch.cat([y0, y1]) >= n_classes).any():
        raise ValueError(f"class ids must lie in [0, {n_classes}); got {y0.tolist()} and {y1.tolist()}")
    out = torch.zeros(len(w), n_classes)
    out.scatter_add_(1, y0[:, None], (1 - w)[:, None])
    out.scatter_add_(1, y1[:, None], w[:, None])
    return out


# ----------------------------------------------------------------------------- samplers

@dataclass
class LatentSamples:
    """Generated latents and where each came from (all tensors on the CPU, length M).

    z (M, d); source_index (M,) index into the z you passed in, -1 for prior samples;
    neighbour_index (M,) the kNN partner or -1; label (M,) class id of the source, -1 if unknown
    (prior samples: label them with a classifier); alpha the step/scale used."""

    z: Tensor
    source_index: Tensor
    neighbour_index: Tensor
    label: Tensor
    alpha: float = 0.0

    def __len__(self) -> int:
        return len(self.z)

    def records(self) -> list[dict]:
        """One plain dict per sample (for a table): source, neighbour, label."""
        return [
            {"source_index": int(s), "neighbour_index": int(n), "label": int(c)}
            for s, n, c in zip(self.source_index.tolist(), self.neighbour_index.tolist(), self.label.tolist())
        ]


def _generator(generator) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(int(generator))  # an int seed


def _check(z, y=None, alpha: float | None = None, n_per: int | None = None):
    z = torch.as_tensor(z, dtype=torch.float32).cpu()
    if z.dim() != 2:
        raise ValueError(f"z must be (N, d), got shape {tuple(z.shape)}")
    if y is not None:
        y = torch.as_tensor(y, dtype=torch.long).cpu().reshape(-1)
        if len(y) != len(z):
            raise ValueError(f"z and y must have the same length, got {len(z)} and {len(y)}")
    if alpha is not None and not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if n_per is not None and n_per < 1:
        raise ValueError(f"n_per must be >= 1, got {n_per}")
    return z, y


def _sources(sources, n: int) -> Tensor:
    if sources is None:
        return torch.arange(n)
    s = torch.as_tensor(sources, dtype=torch.long).cpu().reshape(-1)
    if len(s) and (s.min() < 0 or s.max() >= n):
        raise ValueError(f"sources must be indices in [0, {n}), got min {int(s.min())} max {int(s.max())}")
    return s


def sample_noise(
    z: Tensor, alpha: float, n_per: int = 1, generator=None, y: Tensor | None = None, sources=None
) -> LatentSamples:
    """z_hat = z_i + eps, eps ~ N(0, alpha^2 I): n_per samples around each row i of z (N, d)
    (or only the rows listed in sources).

    -> LatentSamples of length S * n_per (source i repeated n_per times in a row); label y[i]
    when y is given, else -1."""
    z, y = _check(z, y, alpha, n_per)
    src = _sources(sources, len(z)).repeat_interleave(n_per)  # (M,)
    eps = torch.randn(len(src), z.shape[1], generator=_generator(generator)) * alpha
    label = y[src] if y is not None else torch.full_like(src, -1)
    return LatentSamples(z[src] + eps, src, torch.full_like(src, -1), label, float(alpha))


def _same_class_knn(z: Tensor, y: Tensor, k: int, sources: Tensor, chunk_elems: int = 1 << 24):
    """k nearest same-class neighbours of z[sources] (itself excluded) among all rows of z
    -> (idx (S, k), valid (S, k)): core.neighbours.same_class (exact up to its limit, indexed above)."""
    from core import neighbours

    return neighbours.same_class(z, y, k, sources, chunk_elems)


def knn_interpolate(
    z: Tensor,
    y: Tensor,
    alpha: float = 0.5,
    k: int = 5,
    n_per: int = 1,
    generator=None,
    extrapolate: bool = False,
    noise: float = 0.0,
    sources=None,
) -> LatentSamples:
    """Bonn sampler: z_hat = z_i +/- alpha * (z_k - z_i), z_k a random one of the k nearest
    same-class neighbours of z_i (seed 002; z are the encoder means mu).

    interpolate (+): alpha in (0, 1) moves towards the neighbour; extrapolate (-): away from it.
    noise > 0 adds eps ~ N(0, noise^2 I) afterwards (the "+ Noise" variants).
    sources: generate only from these rows (neighbours still come from all of z).
    Sources whose class has no other member are skipped. -> LatentSamples (label = y[i])."""
    z, y = _check(z, y, alpha, n_per)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    gen = _generator(generator)
    empty = torch.empty(0, dtype=torch.long)
    if len(z) < 2:
        return LatentSamples(z[:0], empty, empty, empty, float(alpha))
    rows = _sources(sources, len(z))  # (S,)
    nn, valid = _same_class_knn(z, y, k, rows)  # (S, k)
    n_valid = valid.sum(1)  # (S,) same-class neighbours found (valid ones come first: topk sorts)
    keep = torch.nonzero(n_valid > 0).flatten().repeat_interleave(n_per)  # (M,) positions in rows
    src = rows[keep]
    pick = (torch.rand(len(keep), generator=gen) * n_valid[keep]).long().clamp_max(n_valid[keep] - 1)
    nbr = nn[keep, pick]  # (M,)
    sign = -1.0 if extrapolate else 1.0
    z_hat = z[src] + sign * alpha * (z[nbr] - z[src])
    if noise > 0:
        z_hat = z_hat + torch.randn(z_hat.shape, generator=gen) * noise
    return LatentSamples(z_hat, src, nbr, y[src], float(alpha))


def prior_sample(model: torch.nn.Module, n: int, generator: torch.Generator | None = None) -> Tensor:
    """model.sample_prior(n) as float32 on the CPU, drawn reproducibly from a CPU generator even
    when the model lives on a GPU (a device generator is seeded from the CPU one)."""
    device = _model_device(model)
    if generator is not None and generator.device != device:
        generator = derived_generator(generator, device)
    return model.sample_prior(n, generator=generator).float().cpu()


def sample_prior(model: torch.nn.Module, n: int, alpha: float = 1.0, generator=None,
                 z_train: Tensor | None = None) -> LatentSamples:
    """n samples from the model's prior scaled by alpha (gaussian: N(0, alpha^2 I); uniform:
    U[-alpha, alpha]^d). A plain AE (prior "none") has no prior: its samples come from a diagonal
    Gaussian fitted to `z_train` (mean + alpha * std * eps), which must then be given.
    Unlabelled: source, neighbour and label are all -1."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    gen = _generator(generator)
    if getattr(model, "prior", "none") == "none":
        if z_train is None:
            raise ValueError("a plain autoencoder has no prior; pass z_train (its encoded training latents) "
                             "to sample from a Gaussian fitted to them")
        z_train = torch.as_tensor(z_train, dtype=torch.float32).cpu()
        mean, std = z_train.mean(0), z_train.std(0)
        z = mean + alpha * std * torch.randn(n, z_train.shape[1], generator=gen)
    else:
        z = prior_sample(model, n, gen) * alpha
    none = torch.full((n,), -1, dtype=torch.long)
    return LatentSamples(z, none, none.clone(), none.clone(), float(alpha))
