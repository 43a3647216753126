"""ISDA: streamed covariance (eqs. 9-11), the surrogate loss and its bound."""
import pytest
import torch
import torch.nn.functional as F

from core.isda import (ClassCovariance, isda_lambda, isda_loss, monte_carlo_ce, quadratic_terms,
                       semantic_directions)


def _features(n=300, d=6, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    mix = torch.randn(c, d, d, generator=g)
    x = torch.einsum("bd,bde->be", torch.randn(n, d, generator=g), mix[y]) + 3 * torch.randn(c, d, generator=g)[y]
    return x.double(), y


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("batch", [1, 7, 64, 300])
def test_streamed_covariance_equals_torch_cov(diagonal, batch):
    x, y = _features()
    est = ClassCovariance(3, x.shape[1], diagonal=diagonal, dtype=torch.float64)
    for xb, yb in zip(x.split(batch), y.split(batch)):
        est.update(xb, yb)
    for c in range(3):
        xc = x[y == c]
        ref = torch.cov(xc.t(), correction=0)
        got = est.full_cov()[c]
        if diagonal:
            ref = torch.diag(torch.diag(ref))
        torch.testing.assert_close(got, ref)
        unbiased = est.unbiased_cov()[c]
        unbiased = unbiased if diagonal else unbiased.diagonal()
        torch.testing.assert_close(unbiased, torch.cov(xc.t()).diagonal())
        torch.testing.assert_close(est.mean[c], xc.mean(0))
        assert est.count[c].item() == len(xc)


def test_class_missing_from_batch_is_untouched():
    x, y = _features()
    est = ClassCovariance(4, x.shape[1], dtype=torch.float64).update(x, y)   # class 3 never seen
    assert est.count[3] == 0 and est.cov[3].abs().sum() == 0 and est.mean[3].abs().sum() == 0


def test_bad_shapes_raise():
    est = ClassCovariance(3, 4)
    with pytest.raises(ValueError):
        est.update(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))


def test_isda_is_cross_entropy_at_lambda_zero():
    x, y = _features()
    w, b = torch.randn(3, x.shape[1], dtype=x.dtype), torch.randn(3, dtype=x.dtype)
    cov = ClassCovariance(3, x.shape[1], dtype=x.dtype).update(x, y).cov
    torch.testing.assert_close(isda_loss(x, y, w, b, cov, 0.0), F.cross_entropy(x @ w.t() + b, y))


def test_isda_soft_labels_match_hard_for_one_hot():
    x, y = _features()
    w, b = torch.randn(3, x.shape[1], dtype=x.dtype) * 0.1, torch.randn(3, dtype=x.dtype)
    cov = ClassCovariance(3, x.shape[1], dtype=x.dtype).update(x, y).cov
    hard = isda_loss(x, y, w, b, cov, 0.7)
    soft = isda_loss(x, F.one_hot(y, 3).to(x.dtype), w, b, cov, 0.7)
    torch.testing.assert_close(hard, soft)


@pytest.mark.parametrize("lam", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("diagonal", [False, True])
def test_isda_bounds_monte_carlo_expected_loss(lam, diagonal):
    x, y = _features(n=120, d=5)
    x = x.float() / 4
    g = torch.Generator().manual_seed(1)
    w, b = 0.5 * torch.randn(3, 5, generator=g), torch.randn(3, generator=g)
    cov = ClassCovariance(3, 5, diagonal=diagonal).update(x, y).cov
    bound = isda_loss(x, y, w, b, cov, lam).item()
    mc, se = monte_carlo_ce(x, y, w, b, cov, lam, M=400, generator=g)
    assert se > 0
    assert bound >= mc - se, (bound, mc, se)
    assert bound > F.cross_entropy(x @ w.t() + b, y).item()


def test_quadratic_terms_diagonal_matches_full():
    w = torch.randn(4, 6, dtype=torch.float64)
    var = torch.rand(4, 6, dtype=torch.float64)
    torch.testing.assert_close(quadratic_terms(w, var), quadratic_terms(w, torch.diag_embed(var)))
    assert torch.all(quadratic_terms(w, var).diagonal() == 0)


def test_lambda_schedule_endpoints():
    assert isda_lambda(0, 100, 0.5) == 0.0
    assert isda_lambda(100, 100, 0.5) == 0.5
    assert isda_lambda(50, 100, 0.5) == 0.25
    assert isda_lambda(150, 100, 0.5) == 0.5


def test_semantic_directions_sorted_and_orthonormal():
    a = torch.randn(8, 8, dtype=torch.float64)
    cov = a @ a.t()
    vals, vecs = semantic_directions(cov, 3)
    assert vals.shape == (3,) and vecs.shape == (3, 8)
    assert torch.all(vals[:-1] >= vals[1:])
    torch.testing.assert_close(vecs @ vecs.t(), torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(vecs @ cov @ vecs.t(), torch.diag(vals))
    assert vals[0] == pytest.approx(torch.linalg.eigvalsh(cov).max().item())
    with pytest.raises(ValueError):
        semantic_directions(cov, 9)
