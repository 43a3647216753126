"""Every registered model kind, on every input kind: forward, loss terms, shapes, prior samples, config.

Parametrised over the registry: a kind is tested here the moment it is registered. Each kind is tested
with its config's defaults and with every value of each of its own "choices" fields (e.g. an AAE's priors).
"""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch

from core.config import MODEL_CONFIGS, ModelConfig, TrainConfig
from core.models import MODELS, build_model, config_class, list_models
from core.models.wae import imq_mmd

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (13,)]
BASE_FIELDS = {f.name for f in fields(ModelConfig)}


def variants(kind: str) -> list[dict]:
    """The kind's defaults, plus one config per value of each choices-field the kind adds."""
    out = [{}]
    for f in fields(config_class(kind)):
        if f.name not in BASE_FIELDS and "choices" in f.metadata:
            out += [{f.name: v} for v in f.metadata["choices"] if v != f.default]
    return out


def cases():
    for kind in list_models():
        for variant in variants(kind):
            for shape in SHAPES:
                name = "-".join(f"{k}={v}" for k, v in variant.items()) or "defaults"
                yield pytest.param(kind, variant, shape, id=f"{kind}-{name}-{'x'.join(map(str, shape))}")


def test_every_kind_registers_a_documented_config():
    assert {"ae", "aae", "vae", "wae"} <= set(list_models()) and set(MODELS) == set(MODEL_CONFIGS)
    for kind in list_models():
        cls = config_class(kind)
        assert issubclass(cls, ModelConfig) and cls.kind == kind and cls.description
        assert MODELS[kind].config_class is cls
        for f in fields(cls):
            assert f.metadata.get("help"), f"{kind}.{f.name} has no help text (the CLI and the form show it)"
        assert cls().prior in ("uniform", "gaussian", "none")
        clash = {f.name for f in fields(cls)} & {f.name for f in fields(TrainConfig)}
        assert not clash, f"{kind}'s fields {clash} would collide with training flags of `python -m core train`"


@pytest.mark.parametrize("kind, variant, shape", list(cases()))
@pytest.mark.parametrize("latent_dim", [1, 16])
def test_forward_shapes_and_finite_losses(kind, variant, shape, latent_dim):
    model = build_model(ModelConfig(kind=kind, input_shape=shape, latent_dim=latent_dim, hidden=64, **variant))
    x = torch.rand(5, *shape)
    z = model.encode(x)
    assert z.shape == (5, latent_dim)
    x_hat = model.decode(z).detach()
    assert x_hat.shape == x.shape
    if len(shape) == 3:
        assert 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1  # images decode to pixels
    terms = model.loss(x)
    assert "loss" in terms and all(torch.isfinite(v) for v in terms.values())
    phases = model.training_phases()
    assert phases
    phases[0].loss_fn(x)["loss"].backward()  # gradients flow through the first phase
    assert any(p.grad is not None for p in phases[0].params)
    assert model.sample_prior(7).shape == (7, latent_dim)


@pytest.mark.parametrize("kind", list_models())
def test_config_round_trip_rebuilds_the_same_model(kind):
    cfg = ModelConfig(kind=kind, input_shape=(13,), latent_dim=3, hidden=32)
    assert type(cfg) is config_class(kind) and cfg.kind == kind
    saved = cfg.to_dict()
    assert saved["kind"] == kind and ModelConfig.from_dict(saved) == cfg
    a, b = build_model(cfg, seed=5), build_model(ModelConfig.from_dict(saved), seed=5)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    with pytest.raises(ValueError, match=f"model kind '{kind}': unknown field.*'colour'.*known:"):
        ModelConfig.from_dict({**saved, "colour": "red"})


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'gan'; choose one of \[.*'wae'"):
        ModelConfig(kind="gan")


def test_legacy_flat_configs_build_the_right_kind():
    """The flat dict every checkpoint stored before kinds were open (prior/beta/beta_norm for every kind)."""
    flat = {"input_shape": [1, 28, 28], "latent_dim": 2, "prior": "none", "beta": 1.0, "beta_norm": False,
            "hidden": 256, "arch": "auto"}
    ae = ModelConfig.from_dict({**flat, "kind": "ae"})
    assert type(ae).__name__ == "AEConfig" and ae.prior == "none" and not hasattr(ae, "beta")
    aae = ModelConfig.from_dict({**flat, "kind": "aae", "prior": "uniform", "beta": 4.0})
    assert aae.prior == "uniform" and "beta" not in aae.to_dict()
    vae = ModelConfig.from_dict({**flat, "kind": "vae", "prior": "gaussian", "beta": 4.0})
    assert vae.beta == 4.0 and vae.prior == "gaussian" and "prior" not in vae.to_dict()


def test_uniform_prior_bounds_codes_and_samples():
    model = build_model(ModelConfig(kind="aae", prior="uniform", input_shape=(13,), latent_dim=3))
    with torch.no_grad():
        z = model.encode(torch.randn(100, 13) * 50)
    assert float(z.abs().max()) <= 1.0
    s = model.sample_prior(2000, generator=torch.Generator().manual_seed(0))
    assert -1 <= float(s.min()) < -0.99 and 0.99 < float(s.max()) <= 1


def test_aae_phases_per_prior():
    for prior, n in (("uniform", 3), ("gaussian", 3), ("none", 1)):
        model = build_model(ModelConfig(kind="aae", prior=prior, input_shape=(13,), latent_dim=2))
        assert len(model.training_phases()) == n
    assert set(build_model(ModelConfig(kind="ae", input_shape=(13,), latent_dim=2)).loss(torch.rand(4, 13))) == \
        {"loss", "recon"}


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


def test_wae_mmd_is_small_for_the_prior_and_large_away_from_it():
    g = torch.Generator().manual_seed(0)
    prior_a, prior_b = torch.randn(256, 2, generator=g), torch.randn(256, 2, generator=g)
    shifted = prior_a + 3.0
    same, far = float(imq_mmd(prior_a, prior_b)), float(imq_mmd(shifted, prior_b))
    assert abs(same) < 0.02 and far > 20 * max(abs(same), 1e-3)


def test_wae_loss_is_recon_plus_lambda_mmd():
    model = build_model(ModelConfig(kind="wae", input_shape=(13,), latent_dim=2, lambda_mmd=7.0))
    model.rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        t = model.loss(torch.randn(16, 13))
    assert set(t) == {"loss", "recon", "mmd"}
    assert float(t["loss"]) == pytest.approx(float(t["recon"] + 7.0 * t["mmd"]), rel=1e-5)
    assert model.prior == "gaussian" and model.config.prior == "gaussian"


@pytest.mark.parametrize("bad, message", [
    (dict(latent_dim=0), "latent_dim"), (dict(prior="laplace"), "prior"), (dict(beta=-1.0), "beta"),
    (dict(arch="resnet"), "arch"), (dict(kind="gan"), "unknown model"),
    (dict(kind="aae", prior="laplace"), "prior"), (dict(kind="wae", lambda_mmd=-1.0), "lambda_mmd"),
])
def test_bad_model_config_messages(bad, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(**bad))


def test_conv_needs_big_images():
    with pytest.raises(ValueError, match="arch='conv'"):
        build_model(ModelConfig(kind="vae", input_shape=(1, 8, 8), arch="conv"))
