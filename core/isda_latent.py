"""ISDA on an autoencoder's latents: what the ISDA page shows, as plain functions.

The page estimates a class's covariance from the latents with the streamed estimator (eqs. 9-11),
moves a code along the covariance's eigen-directions, samples N(z, lambda Sigma_y), and checks ISDA's
closed-form bound against the Monte-Carlo expected cross-entropy of a linear classifier on the latents.
Shapes: N points, d latent size, C classes, k directions.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from core.isda import ClassCovariance, _sqrt_psd, isda_loss, monte_carlo_ce


def stream_class_covariance(z: Tensor, y: Tensor, n_classes: int, batch_size: int = 256,
                            seed: int = 0) -> tuple[ClassCovariance, int]:
    """Feed the latents (N, d) to ClassCovariance in shuffled batches, as training would -> (estimator, batches)."""
    est = ClassCovariance(n_classes, z.shape[1])
    order = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    batches = order.split(int(batch_size))
    for idx in batches:
        est.update(z[idx], y[idx])
    return est, len(batches)


def shift_along(z: Tensor, eigvals: Tensor, eigvecs: Tensor, coeffs: Tensor, lam: float) -> Tensor:
    """z (d,) + sum_i t_i sqrt(lam * eigval_i) v_i, with t = coeffs (k,), eigvecs (k, d) rows -> (d,)."""
    k = len(coeffs)
    scale = (lam * eigvals[:k]).clamp(min=0).sqrt() * coeffs  # (k,)
    return z + scale @ eigvecs[:k]


def sample_around(z: Tensor, cov: Tensor, lam: float, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n draws from N(z, lam * cov): z (d,), cov (d, d) -> (n, d)."""
    root = _sqrt_psd(0.5 * (cov + cov.t()).double() * lam).to(z.dtype)  # (d, d), root root^T = lam cov
    eps = torch.randn(n, len(z), generator=generator, dtype=z.dtype)
    return z + eps @ root.t()


def linear_bound_check(z: np.ndarray, y: np.ndarray, n_classes: int, cov: Tensor, lam: float,
                       ms=(2, 4, 8, 16, 32, 64, 128, 256), n_points: int = 1000, seed: int = 0) -> dict:
    """Fit a multinomial logistic regression on the latents, then on a fixed random subset compare the
    Monte-Carlo expected CE over N(a, lam Sigma_y) for growing M with ISDA's closed-form bound.

    -> {"rows": [{"M", "mc_mean", "mc_stderr"}], "bound", "plain_ce", "accuracy"}."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=500).fit(z, y)
    W = np.zeros((n_classes, z.shape[1]), np.float32)
    b = np.full(n_classes, -30.0, np.float32)  # classes the fit never saw get ~zero probability
    if len(clf.classes_) > 2:
        W[clf.classes_], b[clf.classes_] = clf.coef_, clf.intercept_
    else:  # sklearn gives one logit for two classes: split it symmetrically into two
        W[clf.classes_] = np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
        b[clf.classes_] = [-clf.intercept_[0] / 2, clf.intercept_[0] / 2]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(z), generator=g)[:n_points]
    f, yt = torch.from_numpy(z)[idx], torch.from_numpy(y)[idx]
    Wt, bt = torch.from_numpy(W), torch.from_numpy(b)
    rows = []
    for m in ms:
        mean, se = monte_carlo_ce(f, yt, Wt, bt, cov, lam, M=int(m), generator=g)
        rows.append({"M": int(m), "mc_mean": mean, "mc_stderr": se})
    return {"rows": rows, "bound": float(isda_loss(f, yt, Wt, bt, cov, lam)),
            "plain_ce": float(isda_loss(f, yt, Wt, bt, cov, 0.0)), "accuracy": float(clf.score(z, y))}
