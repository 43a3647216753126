"""The uniform prior works: AAE-uniform latents are far closer to uniform than a plain AE's.

Statistic: the Kolmogorov-Smirnov distance D between each latent dimension (min-max scaled to [-1, 1],
so the unbounded AE is judged on its own bounding box, the same box the hole metrics sample) and
U(-1, 1), averaged over dimensions. D = 0 is perfectly uniform; a clustered code with holes has large D.
"""

from __future__ import annotations

import torch

from core.config import ModelConfig, TrainConfig
from core.models import build_model
from core.train import fit


def ks_to_uniform(z: torch.Tensor) -> float:
    lo, hi = z.min(0).values, z.max(0).values
    u = (z - lo) / (hi - lo).clamp_min(1e-12)  # (N, d) in [0, 1]
    s, _ = torch.sort(u, dim=0)
    n = len(s)
    i = torch.arange(1, n + 1, dtype=s.dtype).unsqueeze(1)
    d = torch.maximum(i / n - s, s - (i - 1) / n).max(0).values  # (d,)
    return float(d.mean())


def test_ks_statistic_itself():
    g = torch.Generator().manual_seed(0)
    assert ks_to_uniform(torch.rand(2000, 2, generator=g)) < 0.04
    assert ks_to_uniform(torch.randn(2000, 2, generator=g) ** 3) > 0.2


def test_aae_uniform_latents_are_far_more_uniform_than_plain_ae(digits):
    stats = {}
    for kind, prior in (("ae", "none"), ("aae", "uniform")):
        torch.manual_seed(0)
        model = build_model(ModelConfig(kind=kind, prior=prior, input_shape=digits.input_shape, latent_dim=2, hidden=128))
        fit(model, digits, TrainConfig(epochs=25, batch_size=64, seed=0))
        with torch.no_grad():
            stats[kind] = ks_to_uniform(model.encode(digits.x))
    print(f"KS distance to uniform: AE {stats['ae']:.3f}, AAE-uniform {stats['aae']:.3f}")
    assert stats["aae"] < 0.12 and stats["aae"] < 0.6 * stats["ae"], stats
