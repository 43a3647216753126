"""Adversarial autoencoder (Makhzani et al. 2015; Liu et al. 2018, seed 000).

A deterministic encoder, L2 reconstruction, and a discriminator on z that pushes q(z) towards the prior:
uniform on [-1, 1]^d (encoder output bounded by tanh — no "holes"), Gaussian, or none (a plain autoencoder,
the model that shows the holes). Each batch runs three phases, each with its own optimiser:
reconstruction (encoder + decoder), discriminator (prior samples = real, codes = fake), and the
encoder as generator (codes should look real).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelConfig
from core.models import Phase, register_model
from core.models.nets import build_decoder, build_encoder, mlp, output_transform


@register_model("aae")
class AAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        self.prior = cfg.prior
        self.encoder = build_encoder(cfg, cfg.latent_dim)
        self.decoder = build_decoder(cfg)
        self._out = output_transform(cfg)
        if self.prior != "none":
            self.discriminator = mlp([cfg.latent_dim, 256, 256, 1])

    def encode(self, x):  # (B, *shape) -> (B, d)
        z = self.encoder(x)
        return torch.tanh(z) if self.prior == "uniform" else z

    def decode(self, z):  # (B, d) -> (B, *shape)
        return self._out(self.decoder(z))

    def sample_prior(self, n: int, generator: torch.Generator | None = None):
        device = next(self.parameters()).device
        if self.prior == "uniform":
            return torch.rand(n, self.latent_dim, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    # --- the three phases -----------------------------------------------------------------------
    def reconstruction_loss(self, x):
        recon = F.mse_loss(self.decode(self.encode(x)).float(), x)
        return {"loss": recon, "recon": recon}

    def discriminator_loss(self, x):
        with torch.no_grad():
            fake = self.encode(x)
        real = self.sample_prior(len(x)).to(fake.dtype)
        logits = self.discriminator(torch.cat([real, fake])).float().squeeze(1)
        target = torch.cat([torch.ones(len(x)), torch.zeros(len(x))]).to(logits.device)
        disc = F.binary_cross_entropy_with_logits(logits, target)
        return {"loss": disc, "disc": disc}

    def generator_loss(self, x):
        logits = self.discriminator(self.encode(x)).float().squeeze(1)
        gen = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return {"loss": gen, "gen": gen}

    def loss(self, x):
        terms = self.reconstruction_loss(x)
        if self.prior != "none":
            terms["disc"] = self.discriminator_loss(x)["disc"]
            terms["gen"] = self.generator_loss(x)["gen"]
        return terms

    def training_phases(self) -> list[Phase]:
        autoencoder = list(self.encoder.parameters()) + list(self.decoder.parameters())
        phases = [Phase("recon", self.reconstruction_loss, autoencoder)]
        if self.prior != "none":
            phases += [Phase("disc", self.discriminator_loss, list(self.discriminator.parameters())),
                       Phase("gen", self.generator_loss, list(self.encoder.parameters()))]
        return phases


@register_model("ae")
class AE(AAE):
    """A plain autoencoder: the AAE without a prior (no discriminator)."""

    def __init__(self, cfg: ModelConfig):
        if cfg.prior != "none":
            cfg = ModelConfig.from_dict({**cfg.to_dict(), "prior": "none"})
        super().__init__(cfg)
