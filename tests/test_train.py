"""fit(): seeded, learns, reports progress, stops on request, refuses divergence without losing weights."""

from __future__ import annotations

import threading

import pytest
import torch

from core.config import ModelConfig, TrainConfig
from core.models import build_model, list_models
from core.train import TrainingDiverged, fit, reconstruction_error


def _model(kind="vae", prior="gaussian", shape=(1, 8, 8)):
    return build_model(ModelConfig(kind=kind, prior=prior, input_shape=shape, latent_dim=2, hidden=64))


@pytest.mark.parametrize("kind", list_models())  # every registered kind, with its config's defaults
def test_training_reduces_reconstruction_error(digits, kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, input_shape=(1, 8, 8), latent_dim=2, hidden=64))
    before = reconstruction_error(model, digits.x)
    history = fit(model, digits, TrainConfig(epochs=4, batch_size=64, lr=3e-3))
    assert reconstruction_error(model, digits.x) < 0.7 * before
    assert history["epoch"] == [1, 2, 3, 4] and len(history["recon"]) == 4 and not model.training


def test_same_seed_same_weights(digits):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # model init
        m = _model("aae", "uniform")
        fit(m, digits, TrainConfig(epochs=1, seed=7, device="cpu"))  # bit-identity: the CPU
        runs.append(m.encode(digits.x[:50]))
    assert torch.equal(runs[0], runs[1])


def test_progress_callback_and_stop(digits):
    stop = threading.Event()
    seen = []

    def on_step(info):
        seen.append(info)
        if info["step"] >= 10:
            stop.set()

    history = fit(_model(), digits, TrainConfig(epochs=50, batch_size=32), on_step=on_step, stop=stop)
    assert history["stopped"] and len(history["epoch"]) == 1
    assert seen[0]["total_steps"] == 50 * 57 and set(seen[0]["losses"]) == {"recon", "kl"}


def test_divergence_stops_with_clear_error_and_keeps_last_good_weights(digits):
    model = _model("ae", "none")
    fit(model, digits, TrainConfig(epochs=1))
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="lower learning rate"):
        fit(model, digits, TrainConfig(epochs=2, lr=1e12))
    assert all(torch.equal(good[k], v) for k, v in model.state_dict().items())


def test_shape_mismatch_is_explained(digits):
    with pytest.raises(ValueError, match="expects inputs of shape"):
        fit(_model(shape=(1, 28, 28)), digits, TrainConfig(epochs=1))


@pytest.mark.parametrize("bad, message", [(dict(epochs=0), "epochs"), (dict(lr=0.0), "learning rate"),
                                          (dict(batch_size=0), "batch_size")])
def test_bad_train_config(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)
