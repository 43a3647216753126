"""How good are a sampler's codes? Figures for decoded samples against held-out real images.

Per (model, sampler, sampling seed), for n samples:

- hole_share       share of the sampled codes inside a hole: farther from every training code than the 95th
                   percentile of the training codes' own nearest-neighbour distances (core.holes.hole_fraction;
                   ~0.05 when samples sit like the training codes).
- hole_depth       median nearest-training-code distance of the samples over the training codes' own median
                   (core.holes.hole_depth; ~1 = no holes).
- confidence       mean max-softmax probability of core.holes' real-data classifier (a logistic regression on
                   the training images) on the decoded samples: the same judge as the hole page's midpoint
                   confidence.
- fd               classifier-feature FD: the Frechet distance between Gaussians fitted to the 64-d features
                   (Classifier.features) of decoded samples and of held-out real images, in the feature space of
                   the project's few-shot CNN trained on all of mnist5k. Not Inception-FID: not comparable to
                   published FIDs, only across the rows of one table (same feature net, same n).
- precision, recall  Kynkaenniemi et al. (NeurIPS 2019) in the same feature space: precision = share of samples
                   inside the real manifold (the union of balls around each real feature reaching its k-th nearest
                   real neighbour), recall = share of real features inside the samples' manifold; k = 3.
- density, coverage  Naeem et al. (ICML 2020) on the same real balls, robust to real outliers (manifold_figures
                   says why they are kept beside precision).

The real reference is a random set of n held-out images per seed (the same size as the samples, as Kynkaenniemi et al.
compare equal sizes; FD is biased by n, so the "held-out-real" row, n other held-out images scored the same
way, is the floor every figure should be read against; core.sampler_table also scores their reconstructions, the best
a sampler of that decoder could do).
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.holes import data_fingerprint, hole_depth, hole_fraction, real_data_classifier
from core.latent import decode_latents, encode_dataset

__all__ = [
    "FIGURES",
    "FIGURE_LABELS",
    "feature_classifier",
    "classifier_features",
    "frechet_distance",
    "precision_recall",
    "manifold_figures",
    "RealReference",
    "split_held_out",
    "real_reference",
    "image_figures",
    "sample_figures",
    "real_figures",
]

FIGURES = ("hole_share", "hole_depth", "confidence", "fd", "precision", "recall", "density", "coverage")
FIGURE_LABELS = {
    "hole_share": "hole share",
    "hole_depth": "hole depth",
    "confidence": "confidence",
    "fd": "classifier-feature FD",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
}
PR_K = 3  # Kynkaenniemi et al.'s default neighbourhood size
REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO / ".cache" / "feature-classifier"
CACHE_FORMAT = 1


# ----------------------------------------------------------------------------- feature extractor

MAX_FEATURE_NETS = 4  # feature nets kept in memory (one per data set and seed; ~100k parameters each)
_FEATURE_NETS: dict[Path, torch.nn.Module] = {}
_FEATURE_LOCK = threading.Lock()


def _recipe():
    from core.fewshot.spec import Recipe

    return Recipe()  # the few-shot protocol's classifier recipe as it is (300 steps of 64 images, ~10 s on 1 thread)


def _cache_path(data, seed: int, recipe, cache_dir) -> Path:
    from dataclasses import asdict

    ident = json.dumps({"format": CACHE_FORMAT, "data": data_fingerprint(data), "seed": seed, "recipe": asdict(recipe),
                        "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    return Path(cache_dir or DEFAULT_CACHE_DIR) / f"{hashlib.sha1(ident.encode()).hexdigest()[:16]}.safetensors"


def _skeleton(data, recipe):
    from core.models.classifier import build_classifier

    c = data.input_shape[0]  # (C,) per-channel statistics for images, (F,) per feature for vectors
    return build_classifier(data.input_shape, data.n_classes, seed=0, width=recipe.width,
                            feature_dim=recipe.feature_dim, dropout=recipe.dropout,
                            input_mean=torch.zeros(c), input_std=torch.ones(c))


def feature_classifier(data, seed: int = 0, cache_dir: str | Path | None = None) -> torch.nn.Module:
    """The few-shot CNN (core.models.classifier) trained with the protocol's recipe on all of `data` (mnist5k),
    its draws from `seed`'s named streams; in eval mode. Kept in memory per process and as a safetensors file
    under cache_dir (default .cache/feature-classifier/, keyed by the data's fingerprint, seed, recipe and torch
    version), so it is trained once per machine; a damaged cache file is retrained and rewritten."""
    import torch.nn.functional as F
    from safetensors.torch import load_file, save

    from core.files import atomic_write
    from core.fewshot.recipe import MethodRun, TrainingData, fit_classifier

    recipe = _recipe()
    path = _cache_path(data, seed, recipe, cache_dir)
    with _FEATURE_LOCK:
        if path in _FEATURE_NETS:
            return _FEATURE_NETS[path]
        model = None
        if path.is_file():
            try:
                model = _skeleton(data, recipe)
                model.load_state_dict(load_file(str(path)))
            except Exception:  # noqa: BLE001 -- damaged (SafetensorError is none of the builtin kinds) or another
                model = None   # layout: a cache is never trusted over training again
        if model is None:
            y = F.one_hot(data.y.cpu(), data.n_classes).float()
            model = fit_classifier(TrainingData(data.x.cpu(), y, n_classes=data.n_classes), recipe,
                                   MethodRun(seed, len(data)))
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, save({k: v.detach().contiguous() for k, v in model.state_dict().items()}))
        _FEATURE_NETS[path] = model.eval()
        while len(_FEATURE_NETS) > MAX_FEATURE_NETS:  # oldest first out (dicts keep insertion order)
            _FEATURE_NETS.pop(next(iter(_FEATURE_NETS)))
        return model


@torch.no_grad()
def classifier_features(net, x, batch_size: int = 500) -> np.ndarray:
    """x (M, *input_shape) -> (M, D) float64 features (Classifier.features, eval mode)."""
    x = torch.as_tensor(x, dtype=torch.float32).cpu()
    out = [net.features(xb).double() for xb in x.split(batch_size)]
    return torch.cat(out).numpy() if out else np.empty((0, net.feature_dim))


# ----------------------------------------------------------------------------- distances between feature sets

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to features a (M, D) and
    b (N, D) (scipy.linalg.sqrtm; as pytorch-fid, a small ridge when the product is singular)."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Frechet distance needs at least 2 rows in each set")
    # Features constant in both sets (ReLU units dead on every image: ~20 of the 64 here) add exactly 0 but make
    # the covariances singular, and sqrtm of a singular product is inaccurate: leave them out.
    alive = (a.std(0) > 0) | (b.std(0) > 0) | (a.mean(0) != b.mean(0))
    a, b = a[:, alive], b[:, alive]
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        # a unit dead in one set only still leaves the product singular; scipy then warns that the root "might be
        # inaccurate", but its trace (all the distance needs) agreed with the eigenvalue form
        # sum sqrt(eig(S_a^1/2 S_b S_a^1/2)) to 1e-9 relative on this project's features (both z = 2 and 16 AEs)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(root).all():
            ridge = np.eye(len(s_a)) * 1e-6
            root = linalg.sqrtm((s_a + ridge) @ (s_b + ridge))
    root = np.real(root)  # sqrtm of a product of PSD matrices: imaginary parts are rounding
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)  # column 0 is the point itself
    return dist[:, k]


def _ball_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1000):
    """For balls of radius radii[j] around centres[j]: (how many balls hold each point (M,), whether each ball
    holds some point (N,))."""
    from sklearn.metrics import pairwise_distances

    per_point, ball_used = [], np.zeros(len(centres), dtype=bool)
    for i in range(0, len(points), chunk):
        inside = pairwise_distances(points[i:i + chunk], centres) <= radii[None, :]     # (m, N)
        per_point.append(inside.sum(1))
        ball_used |= inside.any(0)
    return np.concatenate(per_point), ball_used


def manifold_figures(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> dict[str, float]:
    """k-NN manifold figures of features fake (M, D) against real (N, D):

    precision, recall  Kynkaenniemi et al. 2019: share of fake in the union of real k-NN balls; share of real in
                       the union of fake k-NN balls.
    density, coverage  Naeem et al. (ICML 2020), the same real balls made robust to real outliers: density = mean
                       number of real balls holding a fake / k (~1 for real vs real); coverage = share of real balls
                       holding at least one fake. Kept beside precision because one atypical real image with a
                       large ball can make precision meaningless: here uniform-noise images scored precision 0.99
                       against MNIST test images (one ball held 98 % of them), coverage 0.0015."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if k < 1 or len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision / recall with k = {k} needs more than k rows in each set "
                         f"(got {len(real)} real, {len(fake)} generated)")
    held, used = _ball_counts(fake, real, _kth_neighbour_radii(real, k))
    real_in_fake, _ = _ball_counts(real, fake, _kth_neighbour_radii(fake, k))
    return {"precision": float((held > 0).mean()), "recall": float((real_in_fake > 0).mean()),
            "density": float(held.mean() / k), "coverage": float(used.mean())}


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019) of features fake (M, D) against real (N, D)."""
    m = manifold_figures(real, fake, k)
    return m["precision"], m["recall"]


# ----------------------------------------------------------------------------- figures of one set of samples

@dataclass
class RealReference:
    """What every sample set is compared with: held-out real images x (N, ...) and their features (N, D), the
    feature net, and the real-data classifier_fn (x -> probabilities) for the confidence."""
    x: Tensor
    features: np.ndarray
    net: torch.nn.Module
    classifier_fn: object
    source: str


def split_held_out(held_out_x, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two disjoint random sets of n held-out images (n each, fewer when the set is small): the reference every
    sample set is compared with, and a probe of real images scored like a sampler (the "held-out-real" row)."""
    held_out_x = torch.as_tensor(held_out_x, dtype=torch.float32).cpu()
    if len(held_out_x) < 2 * (PR_K + 1):
        raise ValueError(f"need at least {2 * (PR_K + 1)} held-out images, got {len(held_out_x)}")
    n = min(n, len(held_out_x) // 2)
    order = torch.randperm(len(held_out_x), generator=generator)
    return held_out_x[order[:n]], held_out_x[order[n:2 * n]]


def real_reference(train_data, reference_x, source: str = "", feature_seed: int = 0) -> RealReference:
    """The reference images with their features; the feature net and the confidence classifier trained on
    train_data (both cached)."""
    net = feature_classifier(train_data, seed=feature_seed)
    x = torch.as_tensor(reference_x, dtype=torch.float32).cpu()
    return RealReference(x, classifier_features(net, x), net, real_data_classifier(train_data), source)


def image_figures(x, real: RealReference, k: int = PR_K) -> dict[str, float]:
    """confidence, fd, precision, recall of images x (M, ...) against the real reference."""
    feats = classifier_features(real.net, x)
    probs = np.asarray(real.classifier_fn(x))
    return {"confidence": float(probs.max(1).mean()), "fd": frechet_distance(feats, real.features),
            **manifold_figures(real.features, feats, k)}


def sample_figures(model, z_train, z_samples, real: RealReference, k: int = PR_K) -> dict[str, float]:
    """All FIGURES for sampled codes z_samples (M, d) of `model`, whose training codes are z_train (N, d)."""
    z_train = torch.as_tensor(z_train, dtype=torch.float32).cpu()
    z_samples = torch.as_tensor(z_samples, dtype=torch.float32).cpu()
    return {"hole_share": hole_fraction(z_train, z_samples), "hole_depth": hole_depth(z_train, z_samples),
            **image_figures(decode_latents(model, z_samples), real, k)}


def real_figures(model, z_train, x_real, real: RealReference, k: int = PR_K) -> dict[str, float]:
    """The same FIGURES for real held-out images x_real (not the reference's): their encoded codes for the hole
    figures, the images themselves for the rest. The floor (or ceiling) each sampler is read against."""
    z_real = encode_dataset(model, x_real)
    z_train = torch.as_tensor(z_train, dtype=torch.float32).cpu()
    return {"hole_share": hole_fraction(z_train, z_real), "hole_depth": hole_depth(z_train, z_real),
            **image_figures(x_real, real, k)}
