"""Wasserstein autoencoder with an MMD penalty (WAE-MMD; Tolstikhin et al. 2018, "Wasserstein Auto-Encoders").

A deterministic encoder and decoder; instead of the AAE's discriminator, the *whole batch* of codes is
pulled towards the prior N(0, I) by a kernel two-sample statistic:

    loss = recon(x, decode(encode(x))) + lambda * MMD_k(P_Z, Q_Z)

with the inverse multiquadratic kernel k(a, b) = C / (C + ||a - b||^2), C = 2 d sigma_z^2 (sigma_z = 1), summed
over the scales C * {0.1, 0.2, 0.5, 1, 2, 5, 10} as in the authors' code (one scale alone is too narrow for
codes far from the prior early in training), and lambda = 10 (their MNIST setting). The reconstruction term
is this project's, shared with the AE / AAE / VAE (Bernoulli NLL for images, half squared error for
vectors), so the hole comparison differs only in how the codes are pushed towards the prior. Matching the
aggregate posterior (not each q(z|x), as a VAE's KL does) is what should fill the holes between classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelConfig
from core.models import Phase, register_model
from core.models.nets import build_decoder, build_encoder, is_image_shape, output_transform

IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class WAEConfig(ModelConfig):
    prior: ClassVar[str] = "gaussian"  # codes are matched to N(0, I)
    lambda_mmd: float = field(default=10.0, metadata={
        "help": "weight of the MMD penalty between the batch's codes and N(0, I) draws (10 in Tolstikhin et al.)",
        "min": 0.0})

    def describe(self) -> str:
        return f"WAE-MMD (lambda={self.lambda_mmd:g})"


def imq_mmd(z: torch.Tensor, z_prior: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 between codes z (B, d) and prior draws (B, d) under the multi-scale IMQ kernel."""
    n, d = z.shape
    both = torch.cat([z, z_prior])  # (2B, d)
    sq = torch.cdist(both, both).pow(2)  # (2B, 2B)
    k = sum(c / (c + sq) for c in (2.0 * d * s for s in IMQ_SCALES))
    off = 1.0 - torch.eye(n, device=z.device, dtype=z.dtype)  # drop k(z_i, z_i): the unbiased estimate
    k_zz, k_pp, k_zp = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((k_zz * off).sum() + (k_pp * off).sum()) / (n * (n - 1)) - 2 * k_zp.mean()


@register_model("wae", WAEConfig, "Wasserstein AE: an MMD penalty pulls the batch of codes to N(0, I) "
                                  "(Tolstikhin et al. 2018)")
class WAE(nn.Module):
    rng: torch.Generator | None = None  # set by core.train.fit for seeded, thread-local prior draws

    def __init__(self, cfg: WAEConfig):
        super().__init__()
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        self.prior = "gaussian"
        self.encoder = build_encoder(cfg, cfg.latent_dim)
        self.decoder = build_decoder(cfg)
        self._out = output_transform(cfg)

    def encode(self, x):  # (B, *shape) -> (B, d)
        return self.encoder(x)

    def decode(self, z):  # (B, d) -> (B, *shape)
        return self._out(self.decoder(z))

    def sample_prior(self, n: int, generator: torch.Generator | None = None):
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def loss(self, x):
        z = self.encoder(x)  # (B, d)
        out = self.decoder(z).float()
        if is_image_shape(self.config.input_shape):
            recon = F.binary_cross_entropy_with_logits(out, x, reduction="sum") / len(x)
        else:
            recon = 0.5 * F.mse_loss(out, x, reduction="sum") / len(x)
        if len(x) < 2:  # the unbiased MMD needs two codes; a batch of one only reconstructs
            mmd = torch.zeros((), device=x.device)
        else:
            mmd = imq_mmd(z.float(), self.sample_prior(len(x), generator=self.rng).float())
        return {"loss": recon + self.config.lambda_mmd * mmd, "recon": recon, "mmd": mmd}

    def training_phases(self) -> list[Phase]:
        return [Phase("wae", self.loss, list(self.parameters()))]
