"""Dataclass configs. A checkpoint stores `to_dict()`; rebuilding is `Config.from_dict(saved)`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

PRIORS = ("uniform", "gaussian", "none")
MAX_LATENT, MAX_HIDDEN, MAX_INPUTS = 1024, 8192, 3 * 256 * 256


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class ModelConfig(_DictMixin):
    kind: str = "vae"  # registry name: "ae" | "aae" | "vae"
    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    prior: str = "gaussian"  # "uniform" | "gaussian" | "none" (AE)
    beta: float = 1.0  # beta-VAE weight of the KL term
    beta_norm: bool = False  # use beta_norm = beta * d / N (Bonn slides, eq. 2), N = input size (pixels/features)
    hidden: int = 256  # width of the widest hidden layer
    arch: str = "auto"  # "auto" (MLP for vectors and images up to 16x16, conv for larger) | "mlp" | "conv"

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        # Bounds also guard loading: a checkpoint's config.json is user input, and a huge or negative size
        # would otherwise allocate gigabytes or crash inside torch.
        if not 1 <= self.latent_dim <= MAX_LATENT:
            raise ValueError(f"latent_dim must be in 1..{MAX_LATENT} (2 for direct plots), got {self.latent_dim}")
        if not 2 <= self.hidden <= MAX_HIDDEN:
            raise ValueError(f"hidden must be in 2..{MAX_HIDDEN}, got {self.hidden}")
        if not self.input_shape or any(s < 1 for s in self.input_shape) or math.prod(self.input_shape) > MAX_INPUTS:
            raise ValueError(f"input_shape must be positive sizes with at most {MAX_INPUTS:,} values, got {self.input_shape}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.arch not in ("auto", "mlp", "conv"):
            raise ValueError(f"arch must be auto, mlp or conv, got {self.arch!r}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


@dataclass
class TrainConfig(_DictMixin):
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # only ever used on GPU

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
