"""Model registry: `@register_model("name")` fills MODELS; `build_model(cfg)` looks it up.

Every model: `Model(cfg)`, `encode(x) -> z`, `decode(z) -> x`, `loss(x) -> dict` (key "loss" is the total),
`sample_prior(n)`, and `training_phases()` — the (name, loss function, parameters) steps the trainer runs
per batch, each with its own optimiser (one for a VAE, three for an AAE with a prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from core.config import ModelConfig
from core.models.init import init_parameters

MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str):
    def wrap(cls):
        MODELS[name] = cls
        cls.registry_name = name
        return cls

    return wrap


@dataclass
class Phase:
    name: str
    loss_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]]  # x -> {"loss": scalar, other named terms}
    params: Iterable[nn.Parameter]
    lr_scale: float = 1.0  # this phase's learning rate = TrainConfig.lr * lr_scale


def list_models() -> list[str]:
    return sorted(MODELS)


def build_model(cfg: ModelConfig, seed: int | torch.Generator = 0) -> nn.Module:
    """The registered model for cfg, its initial weights drawn from `seed` (an int or a torch.Generator):
    the same seed gives the same weights in any thread or process; the global RNG is never used."""
    if cfg.kind not in MODELS:
        raise ValueError(f"unknown model {cfg.kind!r}; choose one of {list_models()}")
    return init_parameters(MODELS[cfg.kind](cfg), seed)


# Importing the modules registers the models.
from core.models import aae, vae  # noqa: E402,F401
