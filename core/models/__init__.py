"""Model registry: `@register_model("name", NameConfig)` fills MODELS; `build_model(cfg)` looks it up.

A model kind is one module: its config dataclass (a `core.config.ModelConfig` subclass with typed,
documented fields) and its model class, registered together, plus its import line at the bottom of this
file. Everything else — the CLI flags, the Train page's form, the catalog's labels, checkpoint loading,
the model tests — reads the registry.

Every model: `Model(cfg)`, `encode(x) -> z`, `decode(z) -> x`, `loss(x) -> dict` (key "loss" is the total),
`sample_prior(n)`, and `training_phases()` — the (name, loss function, parameters) steps the trainer runs
per batch, each with its own optimiser (one for a VAE, three for an AAE with a prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from core.config import MODEL_CONFIGS, ModelConfig
from core.models.init import init_parameters

MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str, config: type[ModelConfig], description: str = ""):
    """Register a model class under `name` with its config class (a ModelConfig subclass) and a one-line
    description (shown by the Train page, `python -m core train --help` and the catalog)."""
    if not (isinstance(config, type) and issubclass(config, ModelConfig)) or config is ModelConfig:
        raise TypeError(f"register_model({name!r}): config must be a subclass of core.config.ModelConfig")

    def wrap(cls):
        if name in MODELS:
            raise ValueError(f"model kind {name!r} is registered twice ({MODELS[name].__name__}, {cls.__name__})")
        config.kind = name
        config.description = description or config.description or name.upper()
        MODELS[name] = cls
        MODEL_CONFIGS[name] = config
        cls.registry_name = name
        cls.config_class = config
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


def config_class(kind: str) -> type[ModelConfig]:
    """The config dataclass registered for `kind`; ValueError naming the known kinds."""
    if kind not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {kind!r}; choose one of {list_models()}")
    return MODEL_CONFIGS[kind]


def build_model(cfg: ModelConfig, seed: int | torch.Generator = 0) -> nn.Module:
    """The registered model for cfg, its initial weights drawn from `seed` (an int or a torch.Generator):
    the same seed gives the same weights in any thread or process; the global RNG is never used."""
    if cfg.kind not in MODELS:
        raise ValueError(f"unknown model {cfg.kind!r}; choose one of {list_models()}")
    if not isinstance(cfg, MODEL_CONFIGS[cfg.kind]):
        raise TypeError(f"a {cfg.kind!r} model needs a {MODEL_CONFIGS[cfg.kind].__name__}, got {type(cfg).__name__}")
    return init_parameters(MODELS[cfg.kind](cfg), seed)


# Importing the modules registers the models: one line per kind.
from core.models import aae, vae  # noqa: E402,F401
from core.models import wae  # noqa: E402,F401
