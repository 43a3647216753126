"""core.holes: the hole metrics are calibrated, scale-free, and see the uniform prior's effect."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.config import ModelConfig, TrainConfig
from core.holes import (box_samples, hole_depth, hole_fraction, hole_metrics, interclass_pairs, midpoint_realism,
                        reencode_error)
from core.models import build_model
from core.train import fit


@pytest.mark.parametrize("d", [2, 8])
def test_hole_fraction_is_calibrated_when_latents_fill_the_region(d):
    # Training latents and reference samples from the same law: a sample's nearest-neighbour
    # distance follows the training points' own, so ~5% exceed their 95th percentile.
    g = torch.Generator().manual_seed(d)
    z = torch.rand(3000, d, generator=g) * 2 - 1
    samples = torch.rand(3000, d, generator=g) * 2 - 1
    assert 0.02 < hole_fraction(z, samples, percentile=95) < 0.09
    assert 0.07 < hole_fraction(z, samples, percentile=90) < 0.14
    assert 0.85 < hole_depth(z, samples) < 1.2


def test_clustered_latents_have_holes_and_scale_does_not_matter():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    z = centres[torch.randint(3, (1500,), generator=g)] + 0.05 * torch.randn(1500, 2, generator=g)
    box = box_samples(z, 2000, g)
    frac = hole_fraction(z, box)
    assert frac > 0.8
    assert hole_depth(z, box) > 5
    assert hole_fraction(100 * z, 100 * box) == pytest.approx(frac)  # scale-free: AE vs AAE vs VAE
    assert hole_depth(100 * z, 100 * box) == pytest.approx(hole_depth(z, box), rel=1e-4)


def test_hole_fraction_rejects_bad_input():
    with pytest.raises(ValueError, match="percentile"):
        hole_fraction(torch.rand(10, 2), torch.rand(5, 2), percentile=100)
    with pytest.raises(ValueError, match="at least 2"):
        hole_fraction(torch.rand(1, 2), torch.rand(5, 2))


def test_interclass_pairs_cross_classes():
    y = torch.tensor([0] * 50 + [1] * 3)
    i, j = interclass_pairs(y, 200, torch.Generator().manual_seed(0))
    assert len(i) == len(j) == 200 and (y[i] != y[j]).all()
    with pytest.raises(ValueError, match="two classes"):
        interclass_pairs(torch.zeros(5, dtype=torch.long), 3)


class _Snap(nn.Module):
    """A stand-in 'autoencoder' on 2-d vectors: the identity, or a decoder that snaps every code
    to the nearest of a few anchors (a latent space that is all holes between the anchors)."""

    def __init__(self, anchors=None):
        super().__init__()
        self.latent_dim, self.prior = 2, "none"
        self.anchors = anchors
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return x

    def decode(self, z):
        if self.anchors is None:
            return z
        return self.anchors[torch.cdist(z, self.anchors).argmin(1)]


def test_reencode_error_is_zero_for_a_perfect_inverse_and_large_with_holes():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g)
    assert reencode_error(_Snap(), z0, z1) == pytest.approx(0.0, abs=1e-6)
    anchors = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])
    err = reencode_error(_Snap(anchors), anchors[:1].repeat(10, 1), anchors[1:].repeat(10, 1), steps=5)
    # path points at 0, 1/4, 1/2, 3/4, 1 of a 6-long path snap to the nearer end: errors 0, 1.5, 3, 1.5, 0
    assert err == pytest.approx(6 / 5 / 6, rel=1e-5)
    with pytest.raises(ValueError, match="steps"):
        reencode_error(_Snap(), z0, z1, steps=1)


def test_midpoint_realism_averages_the_classifiers_top_probability():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 2])

    def classifier_fn(x):  # top probability 0.9 left of x = 0.25, 0.5 right of it
        top = torch.where(x[:, 0] < 0.25, 0.9, 0.5)[:, None]  # (M, 1)
        return torch.cat([top, (1 - top) / 2, (1 - top) / 2], dim=1)

    score = midpoint_realism(_Snap(), z, y, classifier_fn, n_pairs=300, generator=torch.Generator().manual_seed(0))
    # midpoints (0,.5) [pair 0-2] are confident, (.5,0) and (.5,.5) are not: about 1/3 * 0.9 + 2/3 * 0.5
    assert 0.58 < score < 0.66


def test_hole_metrics_returns_finite_floats(tiny_model, digits):
    out = hole_metrics(tiny_model("vae"), digits, n_pairs=50, n_samples=200, max_points=400)
    assert set(out) == {"hole_fraction_box", "hole_fraction_prior", "hole_depth_box", "hole_depth_prior",
                        "reencode_error", "midpoint_confidence", "recon_confidence"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert 0 <= out["hole_fraction_box"] <= 1 and 0.1 <= out["midpoint_confidence"] <= 1


class _Collapsed(_Snap):
    """Every input encodes to the same corner, as a failed uniform AAE can end up."""

    def __init__(self):
        super().__init__()
        self.prior = "uniform"

    def encode(self, x):
        return torch.ones(len(x), 2)

    def decode(self, z):
        return torch.full((len(z), 1, 8, 8), 0.5)

    def sample_prior(self, n, generator=None):
        return torch.rand(n, 2, generator=generator) * 2 - 1


def test_collapsed_codes_are_not_scored_as_hole_free(digits):
    out = hole_metrics(_Collapsed(), digits, n_pairs=20, n_samples=200, max_points=300)
    assert math.isnan(out["hole_fraction_box"]) and math.isnan(out["hole_depth_box"])
    assert math.isnan(out["reencode_error"])
    assert out["hole_fraction_prior"] == 1.0 and out["hole_depth_prior"] == math.inf


def test_uniform_aae_leaves_fewer_holes_than_a_plain_ae(digits):
    """The seed-000 claim, measured. 2-d latents: there the adversarial prior is matched within a
    few hundred steps; at 8-16 d a short run on 1,797 digits leaves both codes on a ~5-d sheet of
    the cube and both score ~0.98 (see the report in core/holes.py's docstring: use hole_depth).
    Measured over 4 seeds at these settings: AE 0.32-0.34, AAE-uniform 0.14-0.22."""
    fractions = {}
    for kind, prior in (("ae", "none"), ("aae", "uniform")):
        torch.manual_seed(0)
        model = build_model(ModelConfig(kind=kind, prior=prior, input_shape=digits.input_shape, latent_dim=2,
                                        hidden=128))
        fit(model, digits, TrainConfig(epochs=25, batch_size=64, seed=0, device="cpu"))
        fractions[kind] = hole_metrics(model, digits, n_pairs=100, n_samples=4000)["hole_fraction_box"]
    print("hole_fraction_box", fractions)
    assert fractions["ae"] > 0.2, fractions  # far above the 0.05 of a filled box: the AE has holes
    assert fractions["aae"] < fractions["ae"] - 0.07, fractions


def test_shipped_uniform_aae_fills_its_latent_box_better_than_the_shipped_ae():
    """The hole-effect page's default comparison must show the effect (issue 3)."""
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.projection import REPO

    folders = {k: REPO / "checkpoints" / f"mnist5k-{k}-z2" for k in ("ae", "aae-uniform")}
    if not all((f / "config.json").is_file() for f in folders.values()):
        pytest.skip("shipped mnist5k z2 checkpoints not present")
    data = load_dataset("mnist5k")
    fractions = {k: hole_metrics(load_checkpoint(f, device="cpu").model, data, n_pairs=50,
                                 n_samples=4000)["hole_fraction_box"] for k, f in folders.items()}
    print("hole_fraction_box", fractions)
    assert fractions["ae"] > 0.2, fractions
    assert fractions["aae-uniform"] < fractions["ae"] - 0.07, fractions
