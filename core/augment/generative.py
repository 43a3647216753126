"""Latent-level augmentations: generate `n_per` new examples per class from a trained generator.

Each expander is ``fn(x, y_soft, rng, *, n_per, model=... | models=... | gc=..., **params) -> Generated``: the new
rows only, with their provenance (core.augment.generated); the registry appends them to the labelled examples
for callers that want ``(x', y_soft')``. Samplers come from ``core.latent`` (seeds 000 and 002).
z are encoder means (VAE mu); decoding runs on the model's device, results move to x's device.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augment.generated import Generated
from core.device import derived_generator
from core.latent import (decode_latents, encode_dataset, interpolate_latent, knn_interpolate, lsi_soft_label,
                         prior_sample, sample_noise)


def _require(obj, name: str, method: str):
    if obj is None:
        raise ValueError(f"augmentation {method!r} needs a trained {name}; the few-shot runner trains one, "
                         f"or pass {name}=... yourself")
    return obj


def _sources_per_class(y: Tensor, n_per: int, gen: torch.Generator, n_classes: int) -> Tensor:
    """n_per random row indices (with replacement) of each class present in y -> (S,), grouped by class."""
    if n_per < 1:
        raise ValueError(f"n_per (generated examples per class) must be >= 1, got {n_per}")
    order = torch.argsort(y, stable=True)                                       # rows grouped by class
    counts = torch.bincount(y, minlength=n_classes)                            # (C,)
    starts = torch.cumsum(counts, 0) - counts
    present = torch.nonzero(counts > 0).flatten()
    cls = present.repeat_interleave(n_per)                                      # (S,)
    offset = (torch.rand(len(cls), generator=gen) * counts[cls]).long().clamp_max(counts[cls] - 1)
    return order[starts[cls] + offset]


def _decode(model, z: Tensor, like: Tensor, on_device: bool = False) -> Tensor:
    return decode_latents(model, z, on_device=on_device).reshape(len(z), *like.shape[1:])


def _other_class_partners(labels: Tensor, src: Tensor, gen: torch.Generator, n_classes: int) -> Tensor:
    """For each source row, a partner row drawn uniformly from the rows of any other class (rejection-free:
    an index into the complement of the source's class)."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts
    c = labels[src]
    pos = (torch.rand(len(src), generator=gen) * (len(labels) - counts[c])).long()
    pos = torch.minimum(pos, len(labels) - counts[c] - 1)
    pos = torch.where(pos >= starts[c], pos + counts[c], pos)
    return order[pos]


def _lambdas(gen: torch.Generator, n: int, lam: float | None, alpha: float) -> Tensor:
    if lam is None:
        from core.augment.pixel import beta_sample
        return beta_sample(gen, alpha, n)
    return torch.full((n,), float(lam))


def _blend(model, x, labels, src, partner, lams, n_classes, mode="linear", on_device=False) -> Generated:
    """Decoded (1 - lam) z_src + lam z_partner and its lambda-weighted label (two-hot at lam = 0.5); the
    provenance's lam is the weight of the source, 1 - lam. The codes stay on the model's device; the images
    too with on_device=True (lsi-online's per-step blend on a GPU: no host round trip), else on the CPU.
    Index draws and labels are on the CPU."""
    z = encode_dataset(model, x, on_device=True)                                # (N, d)
    at = z.device
    z_new = interpolate_latent(z[src.to(at)], z[partner.to(at)], lams.to(at), mode=mode)  # (S, d)
    y_new = lsi_soft_label(labels[src], labels[partner], lams, n_classes)
    return Generated.of(_decode(model, z_new, x, on_device=on_device), y_new, src, partner, 1 - lams)


def lsi(x: Tensor, y: Tensor, rng: torch.Generator, *, model=None, n_per: int = 10, lam: float | None = 0.5,
        alpha: float = 1.0, mode: str = "linear") -> Generated:
    """Latent space interpolation (Liu et al. 2018), generated once before training: z = (1 - lam) z_i + lam z_j
    for n_per sources i of each class and a partner j of another class, decoded with the AAE (uniform prior);
    label (1 - lam) e_yi + lam e_yj (two-hot at lam = 0.5). lam=None draws lam ~ Beta(alpha, alpha) per sample."""
    model = _require(model, "model (an AAE with a uniform prior)", "lsi")
    gen = derived_generator(rng)
    labels = y.argmax(1).cpu()
    n_classes = y.shape[1]
    if len(torch.unique(labels)) < 2:
        raise ValueError("lsi interpolates between classes: it needs examples of at least 2 classes")
    src = _sources_per_class(labels, n_per, gen, n_classes)                     # (S,)
    partner = _other_class_partners(labels, src, gen, n_classes)
    return _blend(model, x, labels, src, partner, _lambdas(gen, len(src), lam, alpha), n_classes, mode)


def lsi_online(x: Tensor, y: Tensor, rng: torch.Generator, *, model=None, n: int | None = None,
               lam: float | None = 0.5, alpha: float = 1.0, mode: str = "linear") -> tuple[Tensor, Tensor]:
    """LSI on one mini-batch, as seed 000 applies it ("to the same minibatch after random shuffling"): n rows of
    the batch (all of it, cycled, in a fresh random order) each blended with a fresh random partner of another
    class from the same batch, lam fixed (two-hot at 0.5) or ~ Beta(alpha, alpha). Returns only the n new rows
    (images, lambda-weighted labels); a batch of a single class gives none."""
    model = _require(model, "model (an AAE with a uniform prior)", "lsi-online")
    gen = derived_generator(rng)
    labels = y.argmax(1).cpu()
    n = len(x) if n is None else int(n)
    if len(torch.unique(labels)) < 2 or n < 1:
        return x[:0], y[:0]
    src = torch.randperm(len(x), generator=gen).repeat(-(-n // len(x)))[:n]     # (n,)
    partner = _other_class_partners(labels, src, gen, y.shape[1])
    new = _blend(model, x, labels, src, partner, _lambdas(gen, n, lam, alpha), y.shape[1], mode, on_device=True)
    return new.x.to(x.device, x.dtype), new.y_soft.to(y.device, y.dtype)


def _knn(x, y, rng, model, n_per, alpha, k, extrapolate, noise, random_alpha, method):
    model = _require(model, "model (a VAE)", method)
    gen = derived_generator(rng)
    labels = y.argmax(1).cpu()
    z = encode_dataset(model, x)                                                # (N, d) mu
    src = _sources_per_class(labels, n_per, gen, y.shape[1])
    full = knn_interpolate(z, labels, alpha=1.0, k=k, n_per=1, generator=gen, extrapolate=extrapolate,
                           sources=src)                                        # z_i +/- (z_k - z_i)
    if len(full) == 0:
        raise ValueError(f"{method} needs at least 2 labelled examples of a class (a same-class neighbour)")
    step = torch.rand(len(full), generator=gen) * alpha if random_alpha else torch.full((len(full),), alpha)
    z_src = z[full.source_index]
    z_new = z_src + step[:, None] * (full.z - z_src)                            # (M, d)
    if noise > 0:
        z_new = z_new + noise * torch.randn(z_new.shape, generator=gen)
    y_new = F.one_hot(full.label, y.shape[1]).float()
    lam = 1 + step if extrapolate else 1 - step                                 # weight of the source row
    return Generated.of(_decode(model, z_new, x), y_new, full.source_index, full.neighbour_index, lam, step)


def vae_noise(x, y, rng, *, model=None, n_per: int = 10, sigma: float = 0.5):
    """z = mu(x_i) + eps, eps ~ N(0, sigma^2 I) (Bonn 'Noise'); label of x_i."""
    model = _require(model, "model (a VAE)", "vae-noise")
    gen = derived_generator(rng)
    labels = y.argmax(1).cpu()
    z = encode_dataset(model, x)
    src = _sources_per_class(labels, n_per, gen, y.shape[1])
    s = sample_noise(z, sigma, n_per=1, generator=gen, y=labels, sources=src)
    return Generated.of(_decode(model, s.z, x), F.one_hot(s.label, y.shape[1]).float(), s.source_index, step=sigma)


def vae_interp(x, y, rng, *, model=None, n_per: int = 10, alpha: float = 1.0, k: int = 5, noise: float = 0.0,
               random_alpha: bool = True):
    """z = mu_i + a (mu_k - mu_i), k a same-class nearest neighbour, a ~ U(0, alpha) (or a = alpha)."""
    return _knn(x, y, rng, model, n_per, alpha, k, False, noise, random_alpha, "vae-interp")


def vae_extrap(x, y, rng, *, model=None, n_per: int = 10, alpha: float = 0.5, k: int = 5, noise: float = 0.0,
               random_alpha: bool = True):
    """z = mu_i - a (mu_k - mu_i): away from a same-class nearest neighbour, a ~ U(0, alpha) (or a = alpha)."""
    return _knn(x, y, rng, model, n_per, alpha, k, True, noise, random_alpha, "vae-extrap")


def vae_prior_gc(x, y, rng, *, model=None, gc: Callable[[Tensor], Tensor] | None = None, n_per: int = 10,
                 alpha: float = 1.0, threshold: float = 0.8, oversample: int = 10):
    """Samples from the prior N(0, alpha^2 I), decoded and labelled by a generative classifier `gc`
    (x -> class probabilities (B, C)); samples below `threshold` confidence are dropped and at most
    n_per kept per class (the most confident). Classes may end up with fewer."""
    model = _require(model, "model (a VAE)", "vae-prior-gc")
    gc = _require(gc, "generative classifier gc", "vae-prior-gc")
    gen = derived_generator(rng)
    n_classes = y.shape[1]
    x_new = _decode(model, prior_sample(model, n_per * n_classes * oversample, gen) * alpha, x)
    with torch.no_grad():
        probs = gc(x_new.to(x.device)).float().cpu()                           # (M, C)
    chosen, pred = _most_confident_per_class(probs, n_per, threshold)
    return Generated.of(x_new[chosen], F.one_hot(pred[chosen], n_classes).float(), step=alpha)


def multi_vae(x, y, rng, *, models=None, n_per: int = 10, alpha: float = 1.0):
    """One VAE per class (Bonn 'Multi-VAE'): n_per prior samples of each class's VAE, labelled with its class.
    `models` is a list with one model per class (None for a class to skip)."""
    models = _require(models, "list of per-class models", "multi-vae")
    if len(models) != y.shape[1]:
        raise ValueError(f"multi-vae needs one model per class ({y.shape[1]}), got {len(models)}")
    gen = derived_generator(rng)
    xs, ys = [], []
    for c, m in enumerate(models):
        if m is None:
            continue
        xs.append(_decode(m, prior_sample(m, n_per, gen) * alpha, x))
        ys.append(torch.full((n_per,), c, dtype=torch.long))
    if not xs:
        return Generated.empty(x, y)
    return Generated.of(torch.cat(xs), F.one_hot(torch.cat(ys), y.shape[1]).float(), step=alpha)


def distill(x, y, rng, *, teacher=None, pool_x=None, n_per: int = 10, threshold: float = 0.9, batch_size: int = 1000):
    """Data distillation (Radosavovic et al. 2018; seed 003's test-time augmentation as the ensemble):
    `teacher(x) -> (B, C)` class probabilities (the shot classifier's TTA ensemble) labels the unlabelled pool
    `pool_x`; per class the n_per most confident predictions at or above `threshold` join the shots as one-hot
    pseudo-labels. Classes may get fewer (or none)."""
    teacher = _require(teacher, "teacher (a classifier trained on the shots)", "distill")
    pool_x = _require(pool_x, "pool (the unlabelled inputs)", "distill")
    with torch.no_grad():
        probs = torch.cat([teacher(b.to(x.device)).float().cpu() for b in pool_x.split(batch_size)])   # (P, C)
    chosen, pred = _most_confident_per_class(probs, n_per, threshold)
    return Generated.of(pool_x[chosen], F.one_hot(pred[chosen], y.shape[1]).float(), chosen, origin="pool")


def _most_confident_per_class(probs: Tensor, n_per: int, threshold: float) -> tuple[Tensor, Tensor]:
    """Rows whose top probability is >= threshold, at most n_per per predicted class (most confident first);
    returns (chosen row indices, predicted class of every row)."""
    conf, pred = probs.max(1)
    keep = torch.nonzero(conf >= threshold).flatten()
    order = keep[torch.argsort(-conf[keep], stable=True)]
    order = order[torch.argsort(pred[order], stable=True)]                     # by class, most confident first
    counts = torch.bincount(pred[order], minlength=probs.shape[1])
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order)) - starts[pred[order]]
    return order[rank < n_per], pred


def latent_probe(x, y, rng, *, model=None):
    """The inputs replaced by their codes under a frozen encoder (the VAE's mu): the latent space as features."""
    model = _require(model, "model (a VAE trained on the pool)", "latent-probe")
    return encode_dataset(model, x).to(x.device), y
