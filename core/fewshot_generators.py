"""Generators for the latent augmentations of the few-shot runner, and their cache.

Trained on the unlabelled pool (all training images, labels unused) or, with gen_data="labelled",
only on the labelled shots; Multi-VAE (one VAE per class) and the generative classifier need labels,
so they always train on the labelled shots of the cell.
"""
from __future__ import annotations

import copy
import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor

from core.config import ModelConfig, TrainConfig
from core.data import Dataset
from core.models import build_model
from core.train import fit


class Stopped(Exception):
    """The stop event was set while a generator or classifier was training."""


def _check_stop(stop: threading.Event | None):
    if stop is not None and stop.is_set():
        raise Stopped()


def generator_config(kind: str, input_shape, gen: dict) -> ModelConfig:
    """kind "vae" | "aae-uniform" -> the ModelConfig built from the spec's generator settings."""
    if kind == "vae":
        return ModelConfig(kind="vae", input_shape=tuple(input_shape), latent_dim=gen["latent_dim"], prior="gaussian",
                           beta=gen["beta"], beta_norm=gen.get("beta_norm", False), hidden=gen["hidden"],
                           arch=gen["arch"])
    if kind == "aae-uniform":
        return ModelConfig(kind="aae", input_shape=tuple(input_shape), latent_dim=gen["aae_latent_dim"], prior="uniform",
                           hidden=gen["hidden"], arch=gen["arch"])
    raise ValueError(f"unknown generator kind {kind!r}")


@torch.no_grad()
def init_output_bias(model, data: Dataset) -> None:
    """Start an image decoder's last linear layer at logit(mean image).

    Written when the AAE still collapsed into a saturated tanh corner from the default init (before the
    model's saturation penalty and slower adversarial phases). With the current AAE it is no longer needed
    against collapse (mnist5k, MLP, 25 epochs, without -> with: d = 16 recon MSE 0.0142 -> 0.0112,
    d = 50 0.0137 -> 0.0109, code spread unchanged); it is kept as a cheaper start, and because the
    few-shot results in docs/results.md were produced with it.
    """
    if not data.is_image:
        return
    linears = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    if linears and linears[-1].out_features == data.x[0].numel():
        mean = data.x.mean(0).flatten().clamp(1e-3, 1 - 1e-3)
        linears[-1].bias.copy_(torch.logit(mean).to(linears[-1].bias))


def train_generator(kind: str, data: Dataset, gen: dict, seed: int, device: str,
                    stop: threading.Event | None = None, early: bool = False):
    """Train a VAE / AAE-uniform on data.x (labels unused) for about gen["steps"] steps. With early=True
    return (model, copy after 5% of training) — the generative classifier's 'bad reconstructions' (seed 002)."""
    torch.manual_seed(seed)                              # fit seeds its batches and noise, not the initial weights
    model = build_model(generator_config(kind, data.input_shape, gen))
    init_output_bias(model, data)
    snapshots = {}

    epochs = max(1, round(gen["steps"] / math.ceil(len(data) / gen["batch_size"])))   # a budget in steps
    early_epoch = max(1, epochs // 20)

    def on_step(info):
        if info["epoch"] == early_epoch and "early" not in snapshots:
            snapshots["early"] = copy.deepcopy(model).eval()

    cfg = TrainConfig(epochs=epochs, batch_size=gen["batch_size"], lr=gen["lr"], seed=seed, device=device, amp=False)
    history = fit(model, data, cfg, on_step=on_step if early else None, stop=stop)
    if history.get("stopped"):
        raise Stopped()
    model.eval()
    model.fewshot_health = generator_health(model, data.x)
    return (model, snapshots.get("early", model)) if early else model


@torch.no_grad()
def generator_health(model, x: Tensor, n: int = 1000) -> dict:
    """Reconstruction MSE and mean per-dimension std of the codes on up to n training inputs: a collapsed
    generator (all codes equal, recon = the mean input) shows z_std ~ 0."""
    from core.latent import encode_dataset
    from core.train import reconstruction_error

    xs = x[:n]
    z = encode_dataset(model, xs)
    return {"recon_mse": reconstruction_error(model, xs), "z_std": float(z.std(0).mean())}


def train_multi_vae(x: Tensor, y: Tensor, n_classes: int, gen: dict, seed: int, device: str,
                    stop: threading.Event | None = None) -> list:
    """One VAE per class on its labelled shots, with an optional mix-in share of other classes' shots
    (gen["mix_in"], 0.2 in the slides). Each trains for about gen["multi_steps"] steps."""
    models = []
    g = torch.Generator().manual_seed(seed)
    mix_in = float(gen.get("mix_in", 0.0))
    for c in range(n_classes):
        _check_stop(stop)
        own = torch.nonzero(y == c).flatten()
        if len(own) == 0:
            models.append(None)
            continue
        idx = own
        if mix_in > 0:
            others = torch.nonzero(y != c).flatten()
            n_mix = min(len(others), max(1, round(len(own) * mix_in / (1 - mix_in))))
            idx = torch.cat([own, others[torch.randperm(len(others), generator=g)[:n_mix]]])
        data = Dataset(f"class-{c}", x[idx].cpu(), y[idx].cpu(), [str(i) for i in range(n_classes)])
        steps_per_epoch = math.ceil(len(idx) / gen["batch_size"])
        cfg = TrainConfig(epochs=max(1, gen["multi_steps"] // steps_per_epoch), batch_size=gen["batch_size"],
                          lr=gen["lr"], seed=seed * 1000 + c, device=device, amp=False)
        torch.manual_seed(cfg.seed)                      # fit seeds its batches and noise, not the initial weights
        model = build_model(generator_config("vae", data.input_shape, gen))
        fit(model, data, cfg, stop=stop)
        models.append(model.eval())
    _check_stop(stop)
    return models


def gc_training_set(x: Tensor, y: Tensor, early_vae, vae, gen: dict, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """The generative classifier's training data: the shots, plus their reconstructions by an early VAE
    ('bad' reconstructions, for images) or noisy copies (for vectors), plus decoded mu + noise of the final
    VAE — all labelled with their source's class."""
    from core.latent import decode_latents, encode_dataset

    xs, ys = [x], [y]
    if x.ndim == 4:
        for m in (early_vae, vae):
            z = encode_dataset(m, x)
            z = z + gen.get("gc_noise", 0.5) * torch.randn(z.shape, generator=torch.Generator().manual_seed(
                int(torch.randint(0, 2**31, (1,), generator=rng, device=rng.device))))
            xs.append(decode_latents(m, z).reshape(x.shape).to(x.device))
            ys.append(y)
    else:
        for _ in range(2):
            xs.append(x + 0.3 * torch.randn(x.shape, generator=rng, device=x.device))
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


class GeneratorCache:
    """Trained generators keyed by (dataset, data used, settings, seed); within one run each is trained once."""

    def __init__(self):
        self._store: dict[tuple, object] = {}
        self.seconds: dict[tuple, float] = {}

    def get(self, key: tuple, build):
        if key not in self._store:
            import time
            t0 = time.perf_counter()
            self._store[key] = build()
            self.seconds[key] = time.perf_counter() - t0
        return self._store[key]

    def drop(self, keep=lambda key: False):
        for key in [k for k in self._store if not keep(k)]:
            del self._store[key]


def soft_targets(y: Tensor, n_classes: int) -> Tensor:
    return F.one_hot(y.long(), n_classes).float()
