"""core.traversal: per-dimension KL / variance, dimension order, the traversal grid, and the beta maps'
KL ordering on the shipped beta-VAE checkpoints."""

from pathlib import Path

import pytest
import torch

from core.config import ModelConfig
from core.latent import decode_latents, encode_dataset
from core.models import build_model
from core.traversal import (beta_summary, code_variance, dimension_order, dimension_scores, kl_per_dim,
                            traversal_column, traversal_directions, traversal_grid)

ROOT = Path(__file__).resolve().parent.parent
BETAS = {0.5: "mnist5k-vae-beta0.5-z2", 1.0: "mnist5k-vae-z2", 4.0: "mnist5k-vae-beta4-z2",
         16.0: "mnist5k-vae-beta16-z2"}


def _model(kind: str, d: int = 4, seed: int = 0):
    torch.manual_seed(seed)  # test-only: a fixed random init
    prior = {"vae": "gaussian", "ae": "none", "aae": "uniform"}[kind]
    return build_model(ModelConfig(kind=kind, input_shape=(1, 8, 8), latent_dim=d, prior=prior, hidden=32)).eval()


def _data(n: int = 200):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["vae", "ae", "aae"])
def test_centre_column_is_the_samples_reconstruction(kind):
    model, x = _model(kind), _data()
    z = encode_dataset(model, x)
    g = traversal_grid(model, z[7], z, n_steps=7)
    assert g.images.shape == (4, 7, 1, 8, 8) and g.centre == 3
    assert torch.equal(g.z[:, g.centre], z[7].expand(4, -1))  # the centre codes are the sample's own, exactly
    reference = decode_latents(model, encode_dataset(model, x[7:8]))[0]  # decode(encode(x))
    for row in g.images[:, g.centre]:
        torch.testing.assert_close(row, reference, atol=1e-5, rtol=0)


def test_each_row_moves_one_dimension_by_sigma_steps():
    model, x = _model("ae", d=5), _data()
    z = encode_dataset(model, x)
    g = traversal_grid(model, z[0], z, dims=[3, 1], n_steps=5, max_sigma=2.0)
    assert g.offsets.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    sigma = z.std(0, unbiased=False)
    for r, dim in enumerate([3, 1]):
        delta = g.z[r] - z[0]  # (C, d)
        others = [j for j in range(5) if j != dim]
        assert torch.all(delta[:, others] == 0)
        torch.testing.assert_close(delta[:, dim], g.offsets * sigma[dim])
    # the two ends of a row decode to different images: the decoder uses that dimension
    assert not torch.allclose(g.images[0, 0], g.images[0, -1])


def test_live_column_is_the_grid_column_and_moves_along_sigma_e_d():
    """The slider's view (server fallback and the browser's path): z0 + t * directions[r], directions[r] =
    sigma_r * e_{dims_r}; at a grid offset it decodes exactly that grid column."""
    model, x = _model("ae", d=5), _data()
    z = encode_dataset(model, x)
    g = traversal_grid(model, z[2], z, dims=[4, 0, 2], n_steps=7)
    sigma = z.std(0, unbiased=False)
    want = torch.zeros(3, 5)
    want[0, 4], want[1, 0], want[2, 2] = sigma[4], sigma[0], sigma[2]
    torch.testing.assert_close(g.directions, want, rtol=0, atol=0)
    assert torch.equal(g.z0, z[2])
    for c in (0, g.centre, 5):
        torch.testing.assert_close(traversal_column(model, g.z0, g.directions, float(g.offsets[c])), g.images[:, c],
                                   atol=1e-6, rtol=0)
    between = traversal_column(model, g.z0, g.directions, 0.5)  # between two columns: a new code
    torch.testing.assert_close(between, decode_latents(model, z[2] + 0.5 * want), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="one sigma per dimension"):
        traversal_directions([1.0, 2.0], [0], 5)
    with pytest.raises(ValueError, match="directions"):
        traversal_column(model, g.z0, g.directions[:, :3], 1.0)


def test_rows_follow_the_score_order_by_default():
    model, x = _model("vae", d=6), _data()
    z = encode_dataset(model, x)
    scores, kind = dimension_scores(model, x)
    assert kind == "kl"
    g = traversal_grid(model, z[0], z, scores=scores, score_kind=kind)
    assert g.dims.tolist() == dimension_order(scores).tolist()
    assert torch.all(g.scores[:-1] >= g.scores[1:])


def test_dimension_order_is_largest_first_and_stable():
    assert dimension_order([0.1, 3.0, 0.1, 2.0]).tolist() == [1, 3, 0, 2]


def test_kl_per_dim_sums_to_the_vae_loss_kl_term():
    model, x = _model("vae"), _data(64)
    per_dim = kl_per_dim(model, x)
    with torch.no_grad():
        kl = model.loss(x)["kl"]  # eval mode: the same posterior, averaged over the batch
    assert per_dim.shape == (4,) and torch.all(per_dim >= 0)
    torch.testing.assert_close(per_dim.sum(), kl, rtol=1e-4, atol=1e-4)


def test_variance_is_the_only_score_for_models_without_posterior():
    model, x = _model("ae"), _data()
    with pytest.raises(ValueError, match="variance"):
        kl_per_dim(model, x)
    scores, kind = dimension_scores(model, x)
    assert kind == "variance"
    torch.testing.assert_close(scores, code_variance(encode_dataset(model, x)))
    assert beta_summary(model, x)["kl"] != beta_summary(model, x)["kl"]  # NaN: no KL for an AE


def test_bad_grid_arguments_say_what_to_do():
    model, x = _model("ae"), _data()
    z = encode_dataset(model, x)
    with pytest.raises(ValueError, match="odd"):
        traversal_grid(model, z[0], z, n_steps=6)
    with pytest.raises(ValueError, match="dims"):
        traversal_grid(model, z[0], z, dims=[9])
    with pytest.raises(ValueError, match="z0"):
        traversal_grid(model, z[0, :2], z)


def _shipped_betas():
    paths = {b: ROOT / "checkpoints" / n for b, n in BETAS.items()}
    if not all((p / "model.safetensors").is_file() for p in paths.values()):
        pytest.skip("the shipped beta-VAE checkpoints are missing (make beta-checkpoints)")
    return paths


def test_shipped_beta_maps_kl_falls_as_beta_grows():
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset

    torch.set_num_threads(1)
    x = load_dataset("mnist5k").x  # all of it: the set is sorted by class, a prefix is not a sample
    rows = []
    for beta, path in sorted(_shipped_betas().items()):
        ckpt = load_checkpoint(path, device="cpu")
        assert ckpt.model.config.beta == beta and not ckpt.model.config.beta_norm and ckpt.model.latent_dim == 2
        rows.append(beta_summary(ckpt.model, x))
    kl = [r["kl"] for r in rows]
    mse = [r["recon_mse"] for r in rows]
    assert all(a > b for a, b in zip(kl, kl[1:])), f"KL per beta {sorted(BETAS)}: {kl}"
    # From beta = 1 up, reconstructions get worse as the codes carry less. (0.5 against 1 is within training
    # noise at z = 2, where the two-number bottleneck, not beta, limits them: 0.0409 against 0.0402.)
    assert mse[1] < mse[2] < mse[3], f"recon MSE per beta {sorted(BETAS)}: {mse}"
