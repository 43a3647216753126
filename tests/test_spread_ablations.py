"""label-spread's ablation embeddings: the raw pixels and their PCA (no VAE, no UMAP)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.augment import AUGMENTATIONS
from core.augment.spread import label_spread, pca_features
from core.fewshot import ExperimentSpec


def _clusters(n_per_class=30, classes=3, seed=0):
    """Images (N, 1, 4, 4) in [0, 1]: each class lights its own pixels, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.zeros(len(y), 16)
    for c in range(classes):
        x[y == c, c * 5:(c * 5) + 5] = 0.9
    x = (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    return x.view(-1, 1, 4, 4), y


def test_pca_features_are_the_leading_principal_components_deterministically():
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    z = pca_features(x, 3)
    assert z.shape == (40, 3) and np.array_equal(z, pca_features(x, 3))
    from sklearn.decomposition import PCA

    ref = PCA(3, svd_solver="full").fit_transform(x)
    np.testing.assert_allclose(np.abs(z), np.abs(ref), atol=1e-4)          # the same up to each component's sign
    assert pca_features(x, 50).shape == (40, 6)                            # never more than the features
    with pytest.raises(ValueError, match="pca_dim"):
        pca_features(x, 0)


@pytest.mark.parametrize("embedding", ["pixels", "pca"])
def test_spreading_on_pixels_or_pca_labels_separable_pools_without_a_vae(embedding):
    x_pool, y_pool = _clusters()
    shots = torch.tensor([0, 30, 60])                                     # one labelled row per class
    x, y = x_pool[shots], F.one_hot(y_pool[shots], 3).float()
    gen = label_spread(x, y, torch.Generator().manual_seed(0), model=object(), pool_x=x_pool, n_per=10,
                       embedding=embedding, n_neighbors=5, pca_dim=4)
    assert 15 <= len(gen) <= 30 and gen.origin == "pool"                   # at most n_per per class
    assert torch.equal(gen.y_soft.argmax(1), y_pool[gen.source])           # right on well-separated clusters


def test_ablation_embeddings_are_settings_of_label_spread():
    ExperimentSpec(methods=["label-spread"], params={"label-spread": {"embedding": "pca", "pca_dim": 30}})
    with pytest.raises(ValueError, match="embedding"):
        ExperimentSpec(methods=["label-spread"], params={"label-spread": {"embedding": "tsne"}})
    assert AUGMENTATIONS["label-spread"].defaults["embedding"] == "umap"   # the default is unchanged
