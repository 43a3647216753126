"""core.latent: encode/decode, interpolation and extrapolation, LSI labels, the Bonn samplers."""

from __future__ import annotations

import pytest
import torch

from core.latent import (decode_latents, encode_dataset, interpolate_latent, knn_interpolate, lsi_soft_label,
                         mixup_pixels, sample_noise, sample_prior)


# ----------------------------------------------------------------------------- encode / decode

def test_encode_dataset_is_batched_float32_cpu_and_restores_mode(tiny_model, digits):
    model = tiny_model("vae")
    model.train()
    z = encode_dataset(model, digits.x[:50], batch_size=7)
    assert z.shape == (50, 2) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert not z.requires_grad
    assert model.training, "encode_dataset must give the model back in the mode it found it"
    # eval mode: the VAE's mean, so batching does not change anything
    assert torch.allclose(z, encode_dataset(model, digits.x[:50], batch_size=1024), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(z, model.eval().encode(digits.x[:50]), atol=1e-6)


def test_encode_accepts_a_dataset_and_decode_gives_images(tiny_model, digits):
    model = tiny_model("aae", "uniform")
    z = encode_dataset(model, digits.subset(torch.arange(10)))
    assert z.shape == (10, 2) and z.abs().max() <= 1  # tanh-bounded uniform AAE
    x = decode_latents(model, z, batch_size=3)
    assert x.shape == (10, 1, 8, 8) and 0 <= x.min() and x.max() <= 1


def test_bad_batch_size_is_a_value_error(tiny_model, digits):
    with pytest.raises(ValueError, match="batch_size"):
        encode_dataset(tiny_model("ae", "none"), digits.x[:4], batch_size=0)


# ----------------------------------------------------------------------------- interpolation

@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolation_endpoints_are_exact(mode):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    path = interpolate_latent(z0, z1, [0.0, 0.25, 1.0], mode=mode)
    assert path.shape == (3, 16)
    assert torch.equal(path[0], z0) and torch.equal(path[2], z1)


def test_lambda_zero_decodes_the_start_latent(tiny_model, digits):
    model = tiny_model("aae", "uniform")
    z = encode_dataset(model, digits.x[:2])
    path = interpolate_latent(z[0], z[1], torch.linspace(-0.5, 1.5, 5))  # lambda = 0 is index 1
    assert torch.equal(path[1], z[0]) and torch.equal(path[3], z[1])
    x_path = decode_latents(model, path)  # batch-size-dependent BLAS rounding only
    assert torch.allclose(x_path[1], decode_latents(model, z[:1])[0], atol=1e-6)
    assert torch.allclose(x_path[3], decode_latents(model, z[1:2])[0], atol=1e-6)


def test_linear_midpoint_and_extrapolation():
    z0, z1 = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    out = interpolate_latent(z0, z1, [0.5, 1.5, -0.5])
    assert torch.allclose(out[0], torch.tensor([0.5, 1.0]))
    assert torch.allclose(out[1], z1 + 0.5 * (z1 - z0))  # beyond z1
    assert torch.allclose(out[2], z0 - 0.5 * (z1 - z0))  # before z0


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_handles_degenerate_pairs():
    z0, z1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    path = interpolate_latent(z0, z1, torch.linspace(-0.5, 1.5, 9), mode="slerp")
    assert torch.allclose(path.norm(dim=1), torch.ones(9), atol=1e-5)
    assert torch.allclose(path[4], torch.tensor([2**-0.5, 2**-0.5, 0.0]), atol=1e-6)
    for a, b in [(z0, 2 * z0), (z0, torch.zeros(3))]:  # parallel, zero: fall back to linear
        out = interpolate_latent(a, b, [0.0, 0.5, 1.0], mode="slerp")
        assert torch.isfinite(out).all()
        assert torch.allclose(out, interpolate_latent(a, b, [0.0, 0.5, 1.0]))


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_batched_pairs_match_one_pair_at_a_time(mode):
    g = torch.Generator().manual_seed(1)
    z0, z1, lam = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.rand(6, generator=g)
    out = interpolate_latent(z0, z1, lam, mode=mode)  # (B, d): one lambda per pair
    for b in range(6):
        assert torch.allclose(out[b], interpolate_latent(z0[b], z1[b], lam[b : b + 1], mode=mode)[0], atol=1e-6)


def test_interpolation_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        interpolate_latent(torch.zeros(2), torch.ones(2), [0.5], mode="cubic")
    with pytest.raises(ValueError, match="same shape"):
        interpolate_latent(torch.zeros(2), torch.ones(3), [0.5])


def test_mixup_pixels_of_the_same_pair():
    x0, x1 = torch.zeros(1, 8, 8), torch.ones(1, 8, 8)
    mix = mixup_pixels(x0, x1, [0.0, 0.3, 1.0, 1.5])
    assert mix.shape == (4, 1, 8, 8)
    assert torch.equal(mix[0], x0) and torch.equal(mix[2], x1)
    assert torch.allclose(mix[1], torch.full((1, 8, 8), 0.3))
    assert torch.allclose(mix[3], torch.full((1, 8, 8), 1.5))  # not clamped: extrapolation


# ----------------------------------------------------------------------------- LSI labels

def test_lsi_soft_label_sums_to_one_and_is_two_hot_at_half():
    lam = torch.linspace(-0.5, 1.5, 9)
    soft = lsi_soft_label(2, 7, lam, n_classes=10)
    assert soft.shape == (9, 10)
    assert torch.allclose(soft.sum(1), torch.ones(9))
    assert (soft >= 0).all()
    half = lsi_soft_label(2, 7, [0.5], 10)[0]
    assert half[2] == 0.5 and half[7] == 0.5 and half.sum() == 1
    assert torch.allclose(lsi_soft_label(2, 7, [0.25], 10)[0, [2, 7]], torch.tensor([0.75, 0.25]))


def test_lsi_soft_label_clamps_extrapolation_and_same_class_is_one_hot():
    soft = lsi_soft_label(1, 3, [-0.5, 0.0, 1.0, 1.5], 4)
    assert torch.equal(soft[0], torch.tensor([0.0, 1, 0, 0])) and torch.equal(soft[1], soft[0])
    assert torch.equal(soft[3], torch.tensor([0.0, 0, 0, 1])) and torch.equal(soft[2], soft[3])
    assert torch.equal(lsi_soft_label(2, 2, [0.5], 4)[0], torch.tensor([0.0, 0, 1, 0]))


def test_lsi_soft_label_batched_pairs_and_bad_class():
    soft = lsi_soft_label(torch.tensor([0, 1]), torch.tensor([2, 2]), torch.tensor([0.5, 0.0]), 3)
    assert torch.allclose(soft, torch.tensor([[0.5, 0, 0.5], [0, 1, 0]]))
    with pytest.raises(ValueError, match="class ids"):
        lsi_soft_label(0, 5, [0.5], 3)


# ----------------------------------------------------------------------------- samplers

def _clusters(n_per_class=20, n_classes=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    z = 10 * torch.randn(n_classes, d, generator=g)[y] + torch.randn(len(y), d, generator=g)
    return z, y


def test_sample_noise_records_its_sources():
    z, y = _clusters()
    s = sample_noise(z, alpha=0.1, n_per=3, generator=0, y=y)
    assert s.z.shape == (len(z) * 3, 4) and len(s) == len(z) * 3
    assert torch.equal(s.source_index, torch.arange(len(z)).repeat_interleave(3))
    assert (s.neighbour_index == -1).all() and torch.equal(s.label, y[s.source_index])
    assert 0.08 < (s.z - z[s.source_index]).std() < 0.12
    assert torch.equal(sample_noise(z, 0.0).z, z)  # alpha = 0: the sources themselves
    again = sample_noise(z, alpha=0.1, n_per=3, generator=torch.Generator().manual_seed(0), y=y)
    assert torch.equal(s.z, again.z)  # an int seed and a seeded generator agree
    assert (sample_noise(z, 0.1).label == -1).all()  # no labels given


def test_sample_noise_from_chosen_sources_and_records():
    z, y = _clusters()
    s = sample_noise(z, 0.5, n_per=2, generator=1, y=y, sources=[5, 40])
    assert s.source_index.tolist() == [5, 5, 40, 40]
    assert s.records()[2] == {"source_index": 40, "neighbour_index": -1, "label": int(y[40])}
    with pytest.raises(ValueError, match="sources"):
        sample_noise(z, 0.5, sources=[len(z)])


def test_knn_neighbour_is_a_near_same_class_point():
    z, y = _clusters()
    k = 3
    s = knn_interpolate(z, y, alpha=0.5, k=k, n_per=4, generator=0)
    assert len(s) == len(z) * 4
    assert (y[s.neighbour_index] == y[s.source_index]).all()
    assert (s.neighbour_index != s.source_index).all()
    assert torch.equal(s.label, y[s.source_index])
    d = torch.cdist(z, z)
    d[y[:, None] != y[None, :]] = float("inf")
    d.fill_diagonal_(float("inf"))
    knn = d.topk(k, largest=False).indices  # brute force
    assert all(int(n) in knn[int(i)].tolist() for i, n in zip(s.source_index, s.neighbour_index))
    mid = (z[s.source_index] + z[s.neighbour_index]) / 2
    assert torch.allclose(s.z, mid, atol=1e-5)


def test_knn_alpha_one_reaches_the_neighbour_and_extrapolation_moves_away():
    z, y = _clusters()
    s = knn_interpolate(z, y, alpha=1.0, k=2, generator=0)
    assert torch.allclose(s.z, z[s.neighbour_index], atol=1e-5)
    e = knn_interpolate(z, y, alpha=0.5, k=2, generator=0, extrapolate=True)
    assert torch.allclose(e.z, z[e.source_index] - 0.5 * (z[e.neighbour_index] - z[e.source_index]), atol=1e-5)
    n = knn_interpolate(z, y, alpha=0.5, k=2, generator=0, noise=0.2)
    assert not torch.allclose(n.z, knn_interpolate(z, y, alpha=0.5, k=2, generator=0).z)


def test_knn_skips_lonely_classes_and_handles_few_shots():
    z = torch.tensor([[0.0, 0], [1, 0], [5, 5], [9, 9], [9, 8]])
    y = torch.tensor([0, 0, 1, 2, 2])  # class 1 has a single member: no same-class neighbour
    s = knn_interpolate(z, y, alpha=0.5, k=5, n_per=2, generator=0)
    assert 2 not in s.source_index.tolist()
    assert sorted(set(s.source_index.tolist())) == [0, 1, 3, 4]
    assert s.neighbour_index[s.source_index == 0].tolist() == [1, 1]
    only = knn_interpolate(z, y, alpha=0.5, k=1, generator=0, sources=[3])
    assert only.source_index.tolist() == [3] and only.neighbour_index.tolist() == [4]
    assert len(knn_interpolate(z[2:3], y[2:3], generator=0)) == 0


def test_sample_prior_is_unlabelled_and_scaled(tiny_model):
    model = tiny_model("aae", "uniform", latent_dim=3)
    s = sample_prior(model, 500, alpha=0.5, generator=0)
    assert s.z.shape == (500, 3) and s.z.abs().max() <= 0.5 and s.z.abs().max() > 0.45
    assert (s.source_index == -1).all() and (s.neighbour_index == -1).all() and (s.label == -1).all()
    assert torch.equal(s.z, sample_prior(model, 500, alpha=0.5, generator=0).z)
    g = sample_prior(tiny_model("vae"), 4000, alpha=2.0, generator=1)
    assert 1.9 < g.z.std() < 2.1


@pytest.mark.parametrize("call", [
    lambda z, y: sample_noise(z, -1.0),
    lambda z, y: sample_noise(z, 0.1, n_per=0),
    lambda z, y: knn_interpolate(z, y, k=0),
    lambda z, y: knn_interpolate(z, y[:3]),
    lambda z, y: sample_noise(z[0], 0.1),
])
def test_samplers_reject_bad_arguments(call):
    z, y = _clusters()
    with pytest.raises(ValueError):
        call(z, y)


def test_plain_ae_prior_samples_follow_its_latents(tiny_model):
    model = tiny_model("ae", "none")
    with pytest.raises(ValueError, match="no prior"):
        sample_prior(model, 10)
    z_train = torch.randn(3000, 2) * torch.tensor([9.0, 2.0]) + torch.tensor([-10.0, 4.0])
    s = sample_prior(model, 4000, generator=0, z_train=z_train)
    assert torch.allclose(s.z.mean(0), torch.tensor([-10.0, 4.0]), atol=0.6)
    assert torch.allclose(s.z.std(0), torch.tensor([9.0, 2.0]), rtol=0.1)
