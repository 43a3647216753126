"""Label spreading over the unlabelled pool (a graph-based semi-supervised method, Zhou et al. 2004).

The shots and the pool are embedded together without labels — the codes of the VAE trained on the pool, or a
UMAP embedding of those codes (or, for the ablations that say how much the VAE contributes, the raw pixels, their
PCA, or a UMAP of the pixels) —, scikit-learn's LabelSpreading propagates the shots' labels along the kNN graph
of that embedding, and per class the n_per pool rows with the most confident spread label (at or above a
threshold) join the shots as one-hot pseudo-labels, as distillation's do (core.augment.generative.distill).
Randomness: only UMAP draws, seeded from the generator passed in (UMAP then runs single-threaded, repeatable);
the codes, the kNN graph and the propagation are deterministic.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.augment.generated import Generated
from core.augment.generative import _most_confident_per_class, _require
from core.device import derived_seed
from core.latent import encode_dataset

EMBEDDINGS = ("codes", "umap", "umap-pixels", "pixels", "pca")   # the last two: ablations (no VAE, no UMAP)


def spread_embedding(model, x_all: Tensor, rng: torch.Generator, embedding: str = "umap", umap_dim: int = 10,
                     umap_neighbors: int = 30, pca_dim: int = 50) -> np.ndarray:
    """Rows of x_all (shots and pool, no labels) -> (N, e) features the labels spread over: the VAE's codes
    ("codes"), a umap_dim-D UMAP of them ("umap") or of the raw inputs ("umap-pixels"); for the ablations, the
    raw inputs themselves ("pixels") or their first pca_dim principal components ("pca")."""
    if embedding not in EMBEDDINGS:
        raise ValueError(f"label-spread embedding must be one of {list(EMBEDDINGS)}, got {embedding!r}")
    if embedding == "pixels":
        return x_all.flatten(1).cpu().numpy()                                  # (N, F)
    if embedding == "pca":
        return pca_features(x_all.flatten(1).cpu().numpy(), pca_dim)
    z = x_all.flatten(1).cpu().numpy() if embedding == "umap-pixels" else encode_dataset(model, x_all).numpy()
    if embedding == "codes":                                                    # (N, d) VAE means
        return z
    from core.projection import umap_embed                                     # lazy: numba only when used

    # never more components than the codes have (UMAP's PCA start needs it); min_dist 0: packed clusters
    return umap_embed(z, n_components=min(int(umap_dim), z.shape[1]), n_neighbors=int(umap_neighbors),
                      min_dist=0.0, seed=derived_seed(rng))


def pca_features(x: np.ndarray, dim: int) -> np.ndarray:
    """(N, F) -> (N, min(dim, F, N)) scores on the leading principal components: an exact SVD of the centred rows
    (deterministic; a component's sign does not change a kNN graph)."""
    if int(dim) < 1:
        raise ValueError(f"label-spread pca_dim (principal components kept) must be >= 1, got {dim}")
    centred = x.astype(np.float64) - x.mean(0, dtype=np.float64)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(int(dim), len(s))
    return (u[:, :k] * s[:k]).astype(np.float32)


def spread_labels(features: np.ndarray, labels: np.ndarray, n_classes: int, n_neighbors: int = 10,
                  alpha: float = 0.99, max_iter: int = 100) -> Tensor:
    """LabelSpreading (kNN kernel) over all rows; labels: class of each labelled row, -1 for unlabelled ones.
    Returns (N, n_classes) spread label distributions (rows no label reached: all zero).
    The propagation stops after `max_iter` steps. At alpha 0.99 on mnist5k's pool it has not converged by then
    (scikit-learn warned in every cell): the cut-off is part of the setting chosen on validation (a label
    travels at most max_iter hops), so the ConvergenceWarning is not shown."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.semi_supervised import LabelSpreading

    if not 0 < alpha < 1:
        raise ValueError(f"label-spread alpha (how much of a label a point takes from its neighbours) must be in "
                         f"(0, 1), got {alpha}")
    k = int(min(n_neighbors, len(features) - 1))
    if int(max_iter) < 1:
        raise ValueError(f"label-spread max_iter (propagation steps) must be >= 1, got {max_iter}")
    ls = LabelSpreading(kernel="knn", n_neighbors=k, alpha=float(alpha), max_iter=int(max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ls.fit(features, labels)
    dist = np.zeros((len(features), n_classes), dtype=np.float32)
    dist[:, ls.classes_] = np.nan_to_num(ls.label_distributions_)   # unreached rows: 0 / 0
    return torch.from_numpy(dist)


def label_spread(x: Tensor, y: Tensor, rng: torch.Generator, *, model=None, pool_x=None, n_per: int = 400,
                 threshold: float = 0.5, embedding: str = "umap", n_neighbors: int = 10, alpha: float = 0.99,
                 umap_dim: int = 10, umap_neighbors: int = 30, max_iter: int = 100, pca_dim: int = 50) -> Generated:
    """Label spreading (kNN graph, `n_neighbors`, clamping `alpha`) from the shots over the unlabelled pool
    `pool_x` in the embedding (VAE codes, a `umap_dim`-D UMAP of them, or of the pixels; ablations: the pixels
    themselves, or their `pca_dim` leading principal components); per class the n_per pool rows whose
    spread label is most confident, at or above `threshold`, join the shots (one-hot). Classes may get fewer.
    Defaults chosen on mnist5k's validation split (docs/results.md, "Choosing label-spread's settings"); alpha
    0.99 is also Zhou et al.'s, here with the propagation cut off after max_iter = 100 steps (see spread_labels).
    In the few-shot protocol --n-generated sets n_per (400 chosen: ~90 % of a class's pool). The pool VAE is
    needed for every embedding, though "umap-pixels" does not use it (the method's needs are fixed)."""
    model = _require(model, "model (a VAE trained on the pool)", "label-spread")
    pool_x = _require(pool_x, "pool (the unlabelled inputs)", "label-spread")
    if n_per < 1:
        raise ValueError(f"n_per (pseudo-labelled pool examples per class) must be >= 1, got {n_per}")
    if not 0 < threshold <= 1:
        raise ValueError(f"label-spread threshold (the least spread-label confidence kept) must be in (0, 1], "
                         f"got {threshold}")
    n_classes = y.shape[1]
    x_all = torch.cat([x.to(pool_x.device), pool_x])
    features = spread_embedding(model, x_all, rng, embedding, umap_dim, umap_neighbors, pca_dim)
    labels = np.concatenate([y.argmax(1).cpu().numpy(), np.full(len(pool_x), -1)])
    probs = spread_labels(features, labels, n_classes, n_neighbors, alpha, max_iter)[len(x):]            # (P, C) pool rows
    chosen, pred = _most_confident_per_class(probs, n_per, threshold)
    return Generated.of(pool_x[chosen.to(pool_x.device)], F.one_hot(pred[chosen], n_classes).float(), chosen,
                        origin="pool")
