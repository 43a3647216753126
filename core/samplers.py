"""Sampler registry: ways to draw new latent codes for a trained autoencoder, measured against the holes
(core.sample_quality, `python -m core samplers`).

Every sampler is `fn(model, z_train, n, generator, **params) -> (n, d) float32 codes on the CPU`, where z_train
(N, d) are the encoded training data (VAE: the means) and `generator` a torch.Generator that every draw comes
from (numpy / scikit-learn seeds are derived from it: core.device.derived_seed). Registered:

- prior            the model's prior through core.latent.sample_prior: N(0, I) for a VAE, WAE or Gaussian AAE,
                   U[-1, 1]^d for the uniform-prior AAE; a plain AE has no prior, so (as everywhere in the app)
                   a diagonal Gaussian fitted to its codes.
- ex-post          Ghosh et al. (ICLR 2020, "From Variational to Deterministic Autoencoders"): a full-covariance
                   Gaussian mixture fitted to the codes after training (scikit-learn GaussianMixture); the number of
                   components is chosen on a validation split of the codes by mean log-likelihood from
                   EX_POST_CANDIDATES (fixed before any run); samples drawn with the torch generator.
- noise, knn-interpolate, knn-extrapolate
                   the Bonn-slides samplers of core.latent (seed 002) around / between random training codes.

A sampler that needs the training labels (the kNN ones) declares a `y_train` parameter; `draw_codes` passes the
context a caller offers (y_train, details) only to samplers that declare it, so a caller names no sampler.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from core.device import derived_seed
from core.latent import knn_interpolate, sample_noise, sample_prior

__all__ = [
    "Sampler",
    "SAMPLERS",
    "register_sampler",
    "list_samplers",
    "get_sampler",
    "draw_codes",
    "EX_POST_CANDIDATES",
    "ExPostFit",
    "fit_ex_post",
]

EX_POST_CANDIDATES = (1, 2, 5, 10, 20)  # mixture sizes tried by ex-post, fixed before the runs (not tuned on them)
EX_POST_VALIDATION = 0.2                # share of the codes held out to choose the mixture size


@dataclass(frozen=True)
class Sampler:
    name: str
    fn: Callable[..., Tensor]
    description: str
    defaults: dict = field(default_factory=dict, hash=False)  # keyword parameters and their defaults

    def accepts(self, param: str) -> bool:
        return param in self.defaults


SAMPLERS: dict[str, Sampler] = {}


def register_sampler(name: str, fn: Callable[..., Tensor], description: str) -> Sampler:
    """Register fn(model, z_train, n, generator, **params) -> (n, d) codes under `name`; its keyword parameters
    (with defaults) are read from its signature."""
    params = list(inspect.signature(fn).parameters.values())[4:]
    defaults = {p.name: (None if p.default is inspect.Parameter.empty else p.default)
                for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    SAMPLERS[name] = Sampler(name, fn, description, defaults)
    return SAMPLERS[name]


def list_samplers() -> list[str]:
    return list(SAMPLERS)


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {list_samplers()}")
    return SAMPLERS[name]


def draw_codes(name: str, model, z_train, n: int, generator: torch.Generator, context: dict | None = None,
               **params) -> Tensor:
    """n codes (n, d) from sampler `name`. context: what the caller can offer every sampler (y_train (N,) labels,
    details: a dict a sampler may fill with what it chose); each sampler gets only the keys it declares.
    params: the sampler's own settings (unknown ones are refused)."""
    sampler = get_sampler(name)
    unknown = set(params) - set(sampler.defaults)
    if unknown:
        raise ValueError(f"sampler {name!r} has no setting(s) {sorted(unknown)}; "
                         f"its settings: {sorted(sampler.defaults)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not isinstance(generator, torch.Generator):
        raise ValueError("pass a torch.Generator (e.g. torch.Generator().manual_seed(0)): samplers never use the "
                         "global random state")
    z_train = torch.as_tensor(z_train, dtype=torch.float32).cpu()
    if z_train.dim() != 2 or len(z_train) < 2:
        raise ValueError(f"z_train must be (N, d) codes with N >= 2, got shape {tuple(z_train.shape)}")
    offered = {k: v for k, v in (context or {}).items() if sampler.accepts(k)}
    z = sampler.fn(model, z_train, int(n), generator, **{**offered, **params})
    return z.float().cpu().reshape(int(n), z_train.shape[1])


# ----------------------------------------------------------------------------- prior

def prior(model, z_train: Tensor, n: int, generator: torch.Generator) -> Tensor:
    return sample_prior(model, n, generator=generator, z_train=z_train).z


# ----------------------------------------------------------------------------- ex-post density (Ghosh et al.)

@dataclass
class ExPostFit:
    """A Gaussian mixture fitted to codes: weights (K,), means (K, d), covariances (K, d, d) as float64 tensors;
    k the chosen size and val_loglik {k: mean validation log-likelihood per code} for every candidate tried."""
    weights: Tensor
    means: Tensor
    covariances: Tensor
    k: int
    val_loglik: dict

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(n, d) float32 draws with the torch generator: a component per draw, then mean + L eps (L L^T = cov)."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)           # (n,)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)       # (n, d)
        chol = torch.linalg.cholesky(self.covariances)                                            # (K, d, d)
        return (self.means[comp] + torch.einsum("nij,nj->ni", chol[comp], eps)).float()


def _mixture(k: int, seed: int):
    from sklearn.mixture import GaussianMixture  # heavy import, only when needed

    return GaussianMixture(n_components=k, covariance_type="full", random_state=seed, reg_covar=1e-6)


def fit_ex_post(z_train, generator: torch.Generator, candidates=EX_POST_CANDIDATES,
                validation: float = EX_POST_VALIDATION) -> ExPostFit:
    """Choose the mixture size on a random `validation` share of the codes (the largest mean log-likelihood of the
    held-out codes under a mixture fitted to the rest), then refit that size on all codes. Split and
    scikit-learn's random_state are drawn from `generator`. Candidates larger than a tenth of the fitting share
    are skipped (too few codes per component for a full covariance)."""
    z = torch.as_tensor(z_train, dtype=torch.float64).cpu()
    if not 0 < validation < 1:
        raise ValueError(f"validation must be in (0, 1), got {validation}")
    order = torch.randperm(len(z), generator=generator)
    n_val = max(1, int(round(validation * len(z))))
    fit_rows, val_rows = z[order[n_val:]].numpy(), z[order[:n_val]].numpy()
    usable = [int(k) for k in candidates if 1 <= int(k) <= max(1, len(fit_rows) // 10)]
    if not usable:
        raise ValueError(f"no mixture size in {list(candidates)} fits {len(fit_rows)} codes; give smaller candidates")
    seed = derived_seed(generator) % 2**32
    val_loglik = {k: float(_mixture(k, seed).fit(fit_rows).score(val_rows)) for k in usable}
    best = max(usable, key=lambda k: val_loglik[k])
    gmm = _mixture(best, seed).fit(z.numpy())
    return ExPostFit(torch.as_tensor(gmm.weights_, dtype=torch.float64), torch.as_tensor(gmm.means_),
                     torch.as_tensor(gmm.covariances_), best, val_loglik)


def ex_post(model, z_train: Tensor, n: int, generator: torch.Generator, candidates=EX_POST_CANDIDATES,
            details: dict | None = None) -> Tensor:
    fit = fit_ex_post(z_train, generator, candidates)
    if details is not None:
        details.update(k=fit.k, val_loglik=fit.val_loglik)
    return fit.sample(n, generator)


# ----------------------------------------------------------------------------- Bonn samplers (core.latent)

def _random_rows(n_rows: int, n: int, generator: torch.Generator, eligible: Tensor | None = None) -> Tensor:
    """n row indices drawn uniformly (with replacement) among `eligible` rows (default all)."""
    pool = torch.arange(n_rows) if eligible is None else torch.nonzero(eligible).flatten()
    return pool[torch.randint(len(pool), (n,), generator=generator)]


def noise(model, z_train: Tensor, n: int, generator: torch.Generator, alpha: float = 0.25) -> Tensor:
    """z_i + eps around random training codes, eps ~ N(0, sigma^2 I) with sigma = alpha x the codes' mean
    per-dimension standard deviation: scale-free, so alpha means the same for an AE and a uniform AAE (core.latent's
    alpha is absolute)."""
    sigma = float(alpha) * float(z_train.std(0).mean())
    return sample_noise(z_train, sigma, generator=generator, sources=_random_rows(len(z_train), n, generator)).z


def _labels(z_train: Tensor, y_train) -> Tensor:
    if y_train is None:  # no labels: every code is a neighbour candidate
        return torch.zeros(len(z_train), dtype=torch.long)
    y = torch.as_tensor(y_train, dtype=torch.long).cpu().reshape(-1)
    if len(y) != len(z_train):
        raise ValueError(f"y_train must label every code: {len(y)} labels for {len(z_train)} codes")
    return y


def _knn(z_train, n, generator, y_train, alpha, k, extrapolate) -> Tensor:
    y = _labels(z_train, y_train)
    counts = torch.bincount(y)
    eligible = counts[y] >= 2  # a source needs a same-class neighbour
    if not eligible.any():
        raise ValueError("kNN sampling needs two codes of one class; pass more codes or y_train=None")
    src = _random_rows(len(z_train), n, generator, eligible)
    return knn_interpolate(z_train, y, alpha=alpha, k=k, generator=generator, extrapolate=extrapolate, sources=src).z


def knn_interpolate_sampler(model, z_train: Tensor, n: int, generator: torch.Generator, y_train=None,
                            alpha: float = 0.5, k: int = 5) -> Tensor:
    return _knn(z_train, n, generator, y_train, alpha, k, extrapolate=False)


def knn_extrapolate_sampler(model, z_train: Tensor, n: int, generator: torch.Generator, y_train=None,
                            alpha: float = 0.5, k: int = 5) -> Tensor:
    return _knn(z_train, n, generator, y_train, alpha, k, extrapolate=True)


register_sampler("prior", prior, "the model's prior: N(0, I), or U[-1, 1]^d for a uniform AAE; a plain AE (no "
                 "prior): a diagonal Gaussian fitted to its codes")
register_sampler("ex-post", ex_post, "ex-post density (Ghosh et al. 2020): a full-covariance Gaussian mixture fitted "
                 f"to the codes, k from {list(EX_POST_CANDIDATES)} chosen on a validation split")
register_sampler("noise", noise, "a random training code + Gaussian noise (alpha x the codes' mean std; Bonn)")
register_sampler("knn-interpolate", knn_interpolate_sampler, "a random training code moved alpha of the way towards "
                 "one of its k nearest same-class codes (Bonn)")
register_sampler("knn-extrapolate", knn_extrapolate_sampler, "a random training code moved alpha of the way away "
                 "from one of its k nearest same-class codes (Bonn)")
