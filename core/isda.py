"""Implicit Semantic Data Augmentation (Wang et al. 2019; seed 001).

Three pieces, all batched (no per-class Python loop):

* ``ClassCovariance`` — the online class-conditional mean/covariance estimator of
  eqs. 9-11, updated from a mini-batch of features with one-hot einsums.
* ``isda_loss`` — cross-entropy on logits augmented by
  (lambda/2) (w_j - w_y)^T Sigma_y (w_j - w_y), the upper bound of the expected
  cross-entropy over features drawn from N(a_i, lambda Sigma_y).
  ``isda_lambda(t, T, lambda_0)`` is the schedule lambda = (t/T) lambda_0.
* ``monte_carlo_ce`` — the explicit expected loss, estimated by drawing M features
  per sample, with its standard error (to check the bound, and for the app).
* ``semantic_directions`` — the leading eigenvectors of a class covariance: the
  directions ISDA moves features along.

Shapes: B batch, D feature size, C classes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class ClassCovariance:
    """Running per-class mean and (population) covariance of features, eqs. 9-11.

    ``cov`` is the biased (divide-by-n) covariance, as in the paper; multiply by
    n / (n - 1) for the unbiased one (``unbiased_cov``). With ``diagonal=True``
    only the per-dimension variances are kept: (C, D) instead of (C, D, D).
    """

    def __init__(self, n_classes: int, dim: int, diagonal: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        if n_classes < 1 or dim < 1:
            raise ValueError(f"ClassCovariance needs n_classes >= 1 and dim >= 1, got {n_classes}, {dim}")
        self.n_classes, self.dim, self.diagonal = n_classes, dim, diagonal
        self.mean = torch.zeros(n_classes, dim, device=device, dtype=dtype)            # (C, D)
        shape = (n_classes, dim) if diagonal else (n_classes, dim, dim)
        self.cov = torch.zeros(shape, device=device, dtype=dtype)                        # (C, D, D) | (C, D)
        self.count = torch.zeros(n_classes, device=device, dtype=dtype)                  # (C,)

    @torch.no_grad()
    def update(self, features: Tensor, y: Tensor) -> "ClassCovariance":
        """Fold a mini-batch into the running estimates. features (B, D), y (B,) int."""
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must be (B, {self.dim}), got {tuple(features.shape)}")
        if y.shape != features.shape[:1]:
            raise ValueError(f"y must be (B,) matching features, got {tuple(y.shape)}")
        f = features.detach().to(self.mean.dtype)
        onehot = F.one_hot(y.long(), self.n_classes).to(f.dtype)                        # (B, C)
        m = onehot.sum(0)                                                                # (C,)   m_j
        safe_m = m.clamp(min=1)
        batch_mean = onehot.t() @ f / safe_m[:, None]                                    # (C, D) mu'_j
        fc = f - batch_mean[y]                                                           # (B, D)
        if self.diagonal:
            batch_cov = torch.einsum("bc,bi->ci", onehot, fc * fc) / safe_m[:, None]     # (C, D)
        else:
            batch_cov = torch.einsum("bc,bi,bj->cij", onehot, fc, fc) / safe_m[:, None, None]  # (C, D, D)
        n = self.count
        total = n + m
        safe_total = total.clamp(min=1)
        delta = self.mean - batch_mean                                                   # (C, D) mu_j^(t-1) - mu'_j
        w_old, w_new = n / safe_total, m / safe_total                                    # (C,)
        cross = n * m / safe_total ** 2                                                  # (C,)
        if self.diagonal:
            self.cov = w_old[:, None] * self.cov + w_new[:, None] * batch_cov + cross[:, None] * delta * delta
        else:
            outer = delta[:, :, None] * delta[:, None, :]                               # (C, D, D)
            self.cov = (w_old[:, None, None] * self.cov + w_new[:, None, None] * batch_cov
                        + cross[:, None, None] * outer)                                 # eq. 10
        self.mean = w_old[:, None] * self.mean + w_new[:, None] * batch_mean             # eq. 9
        self.count = total                                                               # eq. 11
        return self

    def full_cov(self) -> Tensor:
        """(C, D, D) covariance, expanding the diagonal mode."""
        return torch.diag_embed(self.cov) if self.diagonal else self.cov

    def unbiased_cov(self) -> Tensor:
        """Covariance with the n - 1 correction (what ``torch.cov`` returns by default)."""
        factor = self.count / (self.count - 1).clamp(min=1)
        return self.cov * (factor[:, None] if self.diagonal else factor[:, None, None])

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "cov": self.cov, "count": self.count}


def isda_lambda(step: int, total_steps: int, lambda_0: float) -> float:
    """lambda = (t / T) * lambda_0: small while the covariance estimates are still poor."""
    if total_steps <= 0:
        raise ValueError("total_steps must be positive")
    return lambda_0 * min(max(step, 0), total_steps) / total_steps


def quadratic_terms(weight: Tensor, cov: Tensor) -> Tensor:
    """Q[c, j] = (w_j - w_c)^T Sigma_c (w_j - w_c). weight (C, D); cov (C, D, D) or (C, D) diagonal -> (C, C)."""
    dw = weight[None, :, :] - weight[:, None, :]                                          # (C, C, D) [c, j]
    if cov.ndim == 2:
        return torch.einsum("cjd,cd->cj", dw * dw, cov)
    return torch.einsum("cjd,cde,cje->cj", dw, cov, dw)


def isda_augmented_logits(logits: Tensor, y: Tensor, weight: Tensor, cov: Tensor, lam: float) -> Tensor:
    """logits_j + (lambda/2) (w_j - w_y)^T Sigma_y (w_j - w_y). logits (B, C), y (B,) -> (B, C)."""
    q = quadratic_terms(weight, cov.to(weight.dtype))                                     # (C, C)
    return logits + 0.5 * lam * q[y.long()]


def isda_loss(features: Tensor, y: Tensor, weight: Tensor, bias: Tensor, cov: Tensor, lam: float,
              reduction: str = "mean") -> Tensor:
    """The ISDA surrogate loss (upper bound of the expected CE over N(a_i, lambda Sigma_y)).

    features (B, D); y (B,) int class ids, or (B, C) soft labels — then the loss is the
    label-weighted sum of the per-class ISDA losses (mixup/LSI targets stay exact);
    weight (C, D), bias (C,); cov (C, D, D) or (C, D) diagonal. At lambda = 0 this is
    plain cross-entropy.
    """
    logits = features @ weight.t() + bias                                                 # (B, C)
    if y.ndim == 1:
        out = F.cross_entropy(isda_augmented_logits(logits, y, weight, cov, lam), y.long(), reduction="none")
    else:
        q = quadratic_terms(weight, cov.to(weight.dtype))                                 # (C, C)
        aug = logits[:, None, :] + 0.5 * lam * q[None]                                    # (B, C_true, C)
        logp = torch.log_softmax(aug, dim=-1).diagonal(dim1=1, dim2=2)                    # (B, C) log p(c | aug for c)
        out = -(y * logp).sum(1)
    if reduction == "mean":
        return out.mean()
    if reduction == "sum":
        return out.sum()
    return out


def _sqrt_psd(cov: Tensor) -> Tensor:
    """A matrix square root L with L L^T = cov for (..., D, D) PSD matrices (eigh; tolerates singular)."""
    vals, vecs = torch.linalg.eigh(cov)
    return vecs * vals.clamp(min=0).sqrt()[..., None, :]


@torch.no_grad()
def monte_carlo_ce(features: Tensor, y: Tensor, weight: Tensor, bias: Tensor, cov: Tensor, lam: float,
                   M: int = 256, generator: torch.Generator | None = None) -> tuple[float, float]:
    """Explicit expected CE: draw M features per sample from N(a_i, lambda Sigma_{y_i}).

    Returns (mean loss, standard error of that mean). features (B, D), y (B,).
    """
    if M < 2:
        raise ValueError("monte_carlo_ce needs M >= 2 draws to estimate a standard error")
    B, D = features.shape
    full = torch.diag_embed(cov) if cov.ndim == 2 else cov                                # (C, D, D)
    root = _sqrt_psd(full.double() * lam).to(features.dtype)                              # (C, D, D)
    eps = torch.randn(B, M, D, generator=generator, dtype=features.dtype).to(features.device)  # (B, M, D)
    feats = features[:, None, :] + torch.einsum("bde,bme->bmd", root[y.long()], eps)     # (B, M, D)
    logits = feats @ weight.t() + bias                                                    # (B, M, C)
    ce = F.cross_entropy(logits.reshape(B * M, -1), y.long().repeat_interleave(M), reduction="none").view(B, M)
    per_sample_var = ce.var(dim=1)                                                        # (B,)
    se = (per_sample_var.sum() / M).sqrt() / B
    return ce.mean().item(), se.item()


def semantic_directions(cov: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k eigenpairs of one class covariance (D, D) (or a (D,) diagonal), largest first.

    Returns (eigvals (k,), eigvecs (k, D)) — each row a unit direction.
    """
    if cov.ndim == 1:
        cov = torch.diag(cov)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be (D, D) or (D,), got {tuple(cov.shape)}")
    if not 1 <= k <= cov.shape[0]:
        raise ValueError(f"k must be between 1 and {cov.shape[0]}, got {k}")
    sym = 0.5 * (cov + cov.t())
    vals, vecs = torch.linalg.eigh(sym.double())                                          # ascending
    order = torch.argsort(vals, descending=True)[:k]
    return vals[order].to(cov.dtype), vecs[:, order].t().contiguous().to(cov.dtype)
