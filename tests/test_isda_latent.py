"""The ISDA page's maths on latents: streamed covariance, moves along eigen-directions, N(z, lam Sigma)."""

from __future__ import annotations

import numpy as np
import torch

from core.isda import semantic_directions
from core.isda_latent import linear_bound_check, sample_around, shift_along, stream_class_covariance


def _latents():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(600) % 3
    z = torch.randn(600, 4, generator=g) @ torch.randn(4, 4, generator=g) + y[:, None].float() * 3
    return z, y


def test_streamed_covariance_matches_torch_cov_per_class():
    z, y = _latents()
    est, batches = stream_class_covariance(z, y, 3, batch_size=64, seed=1)
    assert batches == 10
    for c in range(3):
        assert torch.allclose(est.cov[c], torch.cov(z[y == c].T, correction=0), atol=1e-4)


def test_shift_along_moves_sqrt_lambda_eigenvalue_along_each_direction():
    z, y = _latents()
    vals, vecs = semantic_directions(torch.cov(z[y == 0].T), 2)
    start = z[0]
    assert torch.equal(shift_along(start, vals, vecs, torch.zeros(2), 0.5), start)
    moved = shift_along(start, vals, vecs, torch.tensor([1.0, 0.0]), 0.5)
    assert torch.allclose(moved - start, (0.5 * vals[0]).sqrt() * vecs[0], atol=1e-5)


def test_sample_around_has_mean_z_and_covariance_lambda_sigma():
    z, y = _latents()
    cov = torch.cov(z[y == 1].T)
    draws = sample_around(z[5], cov, 0.3, 20000, torch.Generator().manual_seed(2))
    assert torch.allclose(draws.mean(0), z[5], atol=0.05)
    assert torch.allclose(torch.cov(draws.T), 0.3 * cov, atol=0.05 * float(cov.abs().max()))


def test_linear_bound_is_above_the_monte_carlo_estimate():
    z, y = _latents()
    est, _ = stream_class_covariance(z, y, 3)
    res = linear_bound_check(z.numpy(), y.numpy(), 3, est.cov, 0.5, ms=(64,), n_points=300)
    mc = res["rows"][0]
    assert res["bound"] >= mc["mc_mean"] - 2 * mc["mc_stderr"] and res["bound"] >= res["plain_ce"]
    assert 0.5 < res["accuracy"] <= 1 and np.isfinite(res["bound"])
