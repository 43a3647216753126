"""Every registered model, on every input kind: forward, loss terms, shapes, prior samples."""

from __future__ import annotations

import pytest
import torch

from core.config import ModelConfig
from core.models import MODELS, build_model, list_models

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (13,)]
PRIORS = {"ae": ["none"], "aae": ["uniform", "gaussian", "none"], "vae": ["gaussian"]}
EXPECTED_TERMS = {"ae": {"loss", "recon"}, "vae": {"loss", "recon", "kl"}}


def cases():
    for kind in list_models():
        for prior in PRIORS.get(kind, ["gaussian"]):
            for shape in SHAPES:
                yield kind, prior, shape


def test_registry_has_the_three_models():
    assert set(list_models()) == {"ae", "aae", "vae"} and all(isinstance(c, type) for c in MODELS.values())


@pytest.mark.parametrize("kind, prior, shape", list(cases()))
@pytest.mark.parametrize("latent_dim", [1, 16])
def test_forward_shapes_and_finite_losses(kind, prior, shape, latent_dim):
    model = build_model(ModelConfig(kind=kind, prior=prior, input_shape=shape, latent_dim=latent_dim, hidden=64))
    x = torch.rand(5, *shape)
    z = model.encode(x)
    assert z.shape == (5, latent_dim)
    x_hat = model.decode(z).detach()
    assert x_hat.shape == x.shape
    if len(shape) == 3:
        assert 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1  # images decode to pixels
    terms = model.loss(x)
    assert "loss" in terms and all(torch.isfinite(v) for v in terms.values())
    if kind in EXPECTED_TERMS:
        assert set(terms) == EXPECTED_TERMS[kind]
    if kind == "aae" and prior != "none":
        assert {"recon", "disc", "gen"} <= set(terms)
    phases = model.training_phases()
    assert len(phases) == (3 if kind == "aae" and prior != "none" else 1)
    phases[0].loss_fn(x)["loss"].backward()  # gradients flow through the first phase
    assert any(p.grad is not None for p in phases[0].params)
    assert model.sample_prior(7).shape == (7, latent_dim)


def test_uniform_prior_bounds_codes_and_samples():
    model = build_model(ModelConfig(kind="aae", prior="uniform", input_shape=(13,), latent_dim=3))
    with torch.no_grad():
        z = model.encode(torch.randn(100, 13) * 50)
    assert float(z.abs().max()) <= 1.0
    s = model.sample_prior(2000, generator=torch.Generator().manual_seed(0))
    assert -1 <= float(s.min()) < -0.99 and 0.99 < float(s.max()) <= 1


def test_vae_encode_is_the_mean_and_beta_norm_scales_kl():
    cfg = ModelConfig(kind="vae", input_shape=(1, 28, 28), latent_dim=16, beta=2.0, beta_norm=True)
    model = build_model(cfg).eval()
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.encode(x), model.encode_dist(x)[0])
    assert model.kl_weight == pytest.approx(2.0 * 16 / 784)  # beta_norm = beta * d / N
    assert build_model(ModelConfig(kind="vae", beta=2.0)).kl_weight == 2.0


def test_vae_loss_is_recon_plus_beta_kl():
    model = build_model(ModelConfig(kind="vae", input_shape=(13,), latent_dim=2, beta=3.0)).eval()
    with torch.no_grad():
        t = model.loss(torch.randn(8, 13))
    assert float(t["loss"]) == pytest.approx(float(t["recon"] + 3.0 * t["kl"]), rel=1e-5)
    assert float(t["kl"]) >= 0


@pytest.mark.parametrize("bad, message", [
    (dict(latent_dim=0), "latent_dim"), (dict(prior="laplace"), "prior"), (dict(beta=-1.0), "beta"),
    (dict(arch="resnet"), "arch"), (dict(kind="gan"), "unknown model"),
])
def test_bad_model_config_messages(bad, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(**bad))


def test_conv_needs_big_images():
    with pytest.raises(ValueError, match="arch='conv'"):
        build_model(ModelConfig(kind="vae", input_shape=(1, 8, 8), arch="conv"))
