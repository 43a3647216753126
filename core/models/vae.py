"""beta-VAE (Higgins et al. 2017; Bonn slides eq. 1-2).

loss = reconstruction NLL + beta * KL(q(z|x) || N(0, I)), summed over features and latent dims,
averaged over the batch. With `beta_norm`, the KL weight is beta * d / N (d latent size, N input size).
Images use Bernoulli NLL (BCE on logits), vectors a unit-variance Gaussian NLL (half squared error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelConfig
from core.models import Phase, register_model
from core.models.nets import build_decoder, build_encoder, is_image_shape, output_transform


@dataclass
class VAEConfig(ModelConfig):
    prior: ClassVar[str] = "gaussian"  # a VAE's prior is N(0, I)
    beta: float = field(default=1.0, metadata={"help": "beta-VAE weight of the KL term (1 = plain VAE)", "min": 0.0})
    beta_norm: bool = field(default=False, metadata={
        "help": "use beta_norm = beta * d / N (Bonn slides, eq. 2), N = input size (pixels/features)"})

    def describe(self) -> str:
        return f"beta-VAE (beta={self.beta:g}{', normalised' if self.beta_norm else ''})"


@register_model("vae", VAEConfig, "beta-VAE: reconstruction + beta * KL to N(0, I) (Higgins et al. 2017)")
class VAE(nn.Module):
    rng: torch.Generator | None = None  # set by core.train.fit for seeded, thread-local noise

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        self.prior = "gaussian"
        self.encoder = build_encoder(cfg, 2 * cfg.latent_dim)
        self.decoder = build_decoder(cfg)
        self._out = output_transform(cfg)
        n_inputs = math.prod(cfg.input_shape)
        self.kl_weight = cfg.beta * cfg.latent_dim / n_inputs if cfg.beta_norm else cfg.beta

    def encode_dist(self, x):  # (B, *shape) -> mu (B, d), logvar (B, d)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)  # keeps exp() finite on a bad batch

    def encode(self, x):
        return self.encode_dist(x)[0]

    def decode(self, z):
        return self._out(self.decoder(z))

    def sample_prior(self, n: int, generator: torch.Generator | None = None):
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def loss(self, x):
        mu, logvar = self.encode_dist(x)
        if self.training:
            eps = torch.randn(mu.shape, generator=self.rng, device=mu.device, dtype=mu.dtype)
            z = mu + eps * (0.5 * logvar).exp()
        else:
            z = mu
        out = self.decoder(z)
        if is_image_shape(self.config.input_shape):
            recon = F.binary_cross_entropy_with_logits(out.float(), x, reduction="sum") / len(x)
        else:
            recon = 0.5 * F.mse_loss(out.float(), x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return {"loss": recon + self.kl_weight * kl, "recon": recon, "kl": kl}

    def training_phases(self) -> list[Phase]:
        return [Phase("vae", self.loss, list(self.parameters()))]
