"""Hole metrics for the "hole effect" page (seed 000: a uniform prior avoids dead zones).

Three numbers per model, all scale-free so an AE, an AAE and a VAE with latents of very different
sizes compare fairly:

- hole_fraction: the share of reference samples (uniform in the latents' bounding box, or from
  the prior) whose nearest encoded training point is farther than a threshold. The threshold is
  the `percentile`-th percentile of the training points' own nearest-neighbour distances, so it
  moves with the latents' scale, and the metric is calibrated: if the training latents were
  themselves distributed like the reference samples, a reference sample's nearest-neighbour
  distance would follow the same law and the fraction would be about 1 - percentile/100
  (0.05 at the default 95). Values near 1 mean the reference region is mostly holes.
- hole_depth: the median distance from a reference sample to its nearest training latent over
  the median nearest-neighbour distance among training latents; about 1 when the latents fill the
  reference region, larger the deeper the holes. Unlike the fraction it does not saturate at 1 in
  16-d latents, where a few hundred or thousand points cannot fill a cube and every model scores
  a hole fraction near 1.
- reencode_error: mean ||E(D(z)) - z|| along straight paths between encoded points, divided by
  the mean path length ||z1 - z0||, so 0.1 means "off by a tenth of the way".
- midpoint_realism: the mean max-softmax confidence of a classifier trained on real data, on
  decoded inter-class midpoints (recon_confidence, the same on plain reconstructions, is the
  reference to compare it with).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

from core import neighbours
from core.latent import decode_latents, encode_dataset, interpolate_latent, sample_prior

__all__ = [
    "nn_distances",
    "hole_threshold",
    "hole_fraction",
    "hole_depth",
    "hole_depth_of",
    "typical_nn_distance",
    "box_samples",
    "prior_samples",
    "interclass_pairs",
    "reencode_error",
    "midpoint_realism",
    "real_data_classifier",
    "hole_metrics",
]


def _f32(z) -> Tensor:
    return torch.as_tensor(z, dtype=torch.float32).cpu()


def nn_distances(a: Tensor, b: Tensor, exclude_self: bool = False, chunk_elems: int = 1 << 24) -> Tensor:
    """Distance from every row of a (M, d) to its nearest row of b (N, d) -> (M,).

    exclude_self: a is b, and a row's distance to itself does not count. Above core.neighbours.EXACT_LIMIT rows
    of b the distances come from its approximate index (an N x N pass of 60k codes is most of a minute)."""
    a, b = _f32(a), _f32(b)
    if len(a) and neighbours.use_index(len(b), len(a)):
        dist, _ = neighbours.nearest(b, None if exclude_self else a, k=1)
        return dist[:, 0]
    out = []
    step = max(1, chunk_elems // max(len(b), 1))
    for start in range(0, len(a), step):
        # direct differences, not the |a|^2 + |b|^2 - 2ab matmul form: that loses the small
        # distances inside tight clusters to float32 cancellation (0.2% off on a 1,500-point test)
        d = torch.cdist(a[start : start + step], b, compute_mode="donot_use_mm_for_euclid_dist")  # (m, N)
        if exclude_self:
            r = torch.arange(d.shape[0])
            d[r, r + start] = float("inf")
        out.append(d.min(dim=1).values)
    return torch.cat(out) if out else torch.empty(0)


def hole_threshold(z_train: Tensor, percentile: float = 95.0) -> float:
    """The percentile of the training latents' own nearest-neighbour distances."""
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    z_train = _f32(z_train)
    if len(z_train) < 2:
        raise ValueError("need at least 2 encoded training points to define a hole threshold")
    return float(np.percentile(nn_distances(z_train, z_train, exclude_self=True).numpy(), percentile))


def hole_fraction(z_train: Tensor, samples: Tensor, percentile: float = 95.0) -> float:
    """Share of samples (M, d) farther from every training latent (N, d) than the threshold
    (module docstring). About 1 - percentile/100 when samples and z_train share a distribution."""
    samples = _f32(samples)
    if len(samples) == 0:
        raise ValueError("hole_fraction needs at least one sample")
    threshold = hole_threshold(z_train, percentile)
    return float((nn_distances(samples, z_train) > threshold).float().mean())


def typical_nn_distance(z_train: Tensor) -> float:
    """median_i NN(z_i, z_train without i): the unit hole depths are measured in."""
    z_train = _f32(z_train)
    if len(z_train) < 2:
        raise ValueError("need at least 2 encoded training points to measure hole depth")
    return float(nn_distances(z_train, z_train, exclude_self=True).median())


def hole_depth_of(codes, z_train: Tensor, typical: float | None = None) -> np.ndarray:
    """Each code's own hole depth: NN(code, z_train) / typical_nn_distance(z_train) -> (M,) float64
    (hole_depth is the median of these over the samples). Pass `typical` (a float computed once by
    typical_nn_distance) when shading many grids of the same model: it costs an N x N pass.
    Collapsed codes (typical 0): inf for a code off the duplicates, nan on them."""
    typical = typical_nn_distance(z_train) if typical is None else float(typical)
    far = nn_distances(_f32(codes).reshape(-1, _f32(z_train).shape[1]), z_train).numpy().astype(np.float64)  # (M,)
    with np.errstate(divide="ignore", invalid="ignore"):
        return far / typical


def hole_depth(z_train: Tensor, samples: Tensor) -> float:
    """median_s NN(s, z_train) / median_i NN(z_i, z_train without i): ~1 without holes (module doc)."""
    samples = _f32(samples)
    if len(samples) == 0:
        raise ValueError("hole_depth needs at least one sample")
    train = typical_nn_distance(z_train)
    far = float(nn_distances(samples, z_train).median())
    if train == 0:  # half the codes sit on duplicates (e.g. saturated at tanh corners)
        return float("inf") if far > 0 else float("nan")
    return far / train


def box_samples(z_train: Tensor, n: int, generator: torch.Generator | None = None, trim: float = 0.005) -> Tensor:
    """n points uniform in the per-dimension [trim, 1 - trim] quantile box of z_train (N, d).

    Trimming 0.5% per side keeps one stray latent from inflating the box."""
    z_train = _f32(z_train)
    lo = torch.quantile(z_train, trim, dim=0)
    hi = torch.quantile(z_train, 1 - trim, dim=0)
    return lo + (hi - lo) * torch.rand(n, z_train.shape[1], generator=generator)


def prior_samples(model, z_train: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n samples from the model's prior; for prior "none" (plain AE) from a diagonal Gaussian
    fitted to the latents (mean, std per dimension), which is how one would sample an AE."""
    return sample_prior(model, n, generator=generator, z_train=_f32(z_train)).z


def interclass_pairs(y: Tensor, n_pairs: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """n_pairs random index pairs (i, j) with y[i] != y[j] -> (i (P,), j (P,)). Batched rejection:
    draw 4x as many pairs as needed at once and keep the inter-class ones."""
    y = torch.as_tensor(y, dtype=torch.long).cpu()
    if len(torch.unique(y)) < 2:
        raise ValueError("inter-class pairs need at least two classes in y")
    i_all, j_all = [], []
    found = 0
    while found < n_pairs:
        i = torch.randint(len(y), (4 * n_pairs + 16,), generator=generator)
        j = torch.randint(len(y), (4 * n_pairs + 16,), generator=generator)
        keep = y[i] != y[j]
        i_all.append(i[keep])
        j_all.append(j[keep])
        found += int(keep.sum())
    return torch.cat(i_all)[:n_pairs], torch.cat(j_all)[:n_pairs]


def reencode_error(model, z0: Tensor, z1: Tensor, steps: int = 9, batch_size: int = 1024) -> float:
    """Mean ||E(D(z)) - z|| over `steps` evenly spaced points (ends included) on the straight
    paths z0[p] -> z1[p] (z0, z1 (P, d)), divided by the mean path length mean ||z1 - z0||."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    z0, z1 = _f32(z0).reshape(-1, model.latent_dim), _f32(z1).reshape(-1, model.latent_dim)
    lam = torch.linspace(0, 1, steps)
    path = interpolate_latent(z0.repeat_interleave(steps, 0), z1.repeat_interleave(steps, 0), lam.repeat(len(z0)))
    z_again = encode_dataset(model, decode_latents(model, path, batch_size), batch_size)  # (P*T, d)
    scale = float((z1 - z0).norm(dim=1).mean())
    if scale == 0:
        return float("nan")  # every path has length 0 (collapsed codes): undefined
    return float((z_again - path).norm(dim=1).mean()) / scale


def _max_confidence(classifier_fn, x: Tensor) -> Tensor:
    p = torch.as_tensor(np.asarray(classifier_fn(x)), dtype=torch.float32)  # (M, C) probabilities
    return p.max(dim=1).values


def midpoint_realism(model, z: Tensor, y: Tensor, classifier_fn, n_pairs: int = 500,
                     generator: torch.Generator | None = None) -> float:
    """Mean max-softmax confidence of classifier_fn (x (M, ...) -> probabilities (M, C)), a
    classifier trained on real data, on decoded midpoints of random inter-class pairs of z (N, d)."""
    z = _f32(z)
    i, j = interclass_pairs(y, n_pairs, generator)
    mid = interpolate_latent(z[i], z[j], torch.full((len(i),), 0.5))
    return float(_max_confidence(classifier_fn, decode_latents(model, mid)).mean())


# ----------------------------------------------------------------------------- real-data classifier

MAX_CLASSIFIERS = 4  # real-data classifiers kept in-process (one per dataset), least recently used out first
FINGERPRINT_VALUES = 4096  # values of x hashed for the cache key
_CLASSIFIERS: "OrderedDict[tuple, object]" = OrderedDict()
_CLASSIFIERS_LOCK = threading.Lock()


def data_fingerprint(data) -> str:
    """A cheap fingerprint of a dataset's contents: sha1 of its shapes and of FINGERPRINT_VALUES evenly
    spaced values of x and y (a few microseconds; no copy of the whole set). The id alone is not enough:
    the file behind an idx:/npz: spec can change."""
    x, y = data.x.detach().reshape(-1), data.y.detach().reshape(-1)
    h = hashlib.sha1(repr((tuple(data.x.shape), tuple(data.y.shape), str(data.x.dtype))).encode())
    for t in (x, y):
        step = max(1, len(t) // FINGERPRINT_VALUES)
        h.update(t[::step][:FINGERPRINT_VALUES].cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _data_key(data) -> tuple:
    return (data.id, data_fingerprint(data))


def real_data_classifier(data, max_train: int = 5000, seed: int = 0):
    """A multinomial logistic regression on flattened real inputs, cached per dataset in-process.

    -> classifier_fn(x (M, ...)) -> probabilities (M, n_classes) as numpy (columns = class ids)."""
    from sklearn.linear_model import LogisticRegression  # heavy import, only when needed

    key = _data_key(data) + (max_train, seed)
    with _CLASSIFIERS_LOCK:
        if key not in _CLASSIFIERS:
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(data.x), generator=g)[:max_train]
            x = data.x.cpu()[idx].reshape(len(idx), -1).float().numpy()
            clf = LogisticRegression(C=0.1, max_iter=300).fit(x, data.y.cpu()[idx].numpy())
            _CLASSIFIERS[key] = clf
            while len(_CLASSIFIERS) > MAX_CLASSIFIERS:
                _CLASSIFIERS.popitem(last=False)
        _CLASSIFIERS.move_to_end(key)
        clf = _CLASSIFIERS[key]
    n_classes = data.n_classes

    def classifier_fn(x) -> np.ndarray:
        x = torch.as_tensor(x, dtype=torch.float32).reshape(len(x), -1).cpu().numpy()
        p = np.zeros((len(x), n_classes), dtype=np.float32)
        p[:, clf.classes_] = clf.predict_proba(x)
        return p

    return classifier_fn


# ----------------------------------------------------------------------------- all at once

def hole_metrics(model, data, n_pairs: int = 500, seed: int = 0, n_samples: int = 2000,
                 percentile: float = 95.0, max_points: int = 5000, steps: int = 9) -> dict[str, float]:
    """All hole metrics of a model on a dataset (at most max_points of it, seeded) -> plain dict:

    hole_fraction_box    share of bounding-box samples in holes (~0.05 = no holes, 1 = all holes)
    hole_fraction_prior  the same for prior samples (plain AE: a Gaussian fitted to its latents)
    hole_depth_box       median distance of box samples to the latents / latents' own (~1 = filled)
    hole_depth_prior     the same for prior samples
    reencode_error       ||E(D(z)) - z|| / path length, on inter-class paths
    midpoint_confidence  real-data classifier's mean confidence on decoded inter-class midpoints
    recon_confidence     the same on reconstructions of real points (the reference value)

    Codes collapsed to one point (a failed adversarial run: every x maps to one tanh corner) have
    no box: the box metrics are NaN (and reencode_error too, every path having length 0), while
    hole_fraction_prior is ~1. A NaN means "undefined", never "no holes".
    """
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.x), generator=g)[:max_points]
    x, y = data.x.cpu()[idx], data.y.cpu()[idx]
    z = encode_dataset(model, x)  # (N, d)
    classifier_fn = real_data_classifier(data, seed=seed)
    i, j = interclass_pairs(y, n_pairs, g)
    rec = torch.randperm(len(z), generator=g)[:n_pairs]
    box, prior = box_samples(z, n_samples, g), prior_samples(model, z, n_samples, g)
    collapsed = bool((box.max(0).values - box.min(0).values).max() <= 1e-6 * (1 + float(z.abs().max())))
    nan = float("nan")
    return {
        "hole_fraction_box": nan if collapsed else hole_fraction(z, box, percentile),
        "hole_fraction_prior": hole_fraction(z, prior, percentile),
        "hole_depth_box": nan if collapsed else hole_depth(z, box),
        "hole_depth_prior": hole_depth(z, prior),
        "reencode_error": reencode_error(model, z[i], z[j], steps),
        "midpoint_confidence": midpoint_realism(model, z, y, classifier_fn, n_pairs, g),
        "recon_confidence": float(_max_confidence(classifier_fn, decode_latents(model, z[rec])).mean()),
    }


# ----------------------------------------------------------------------------- executor job

def hole_metrics_job(checkpoint: str | bytes, dataset: str, n_pairs: int = 300) -> dict[str, float]:
    """hole_metrics as an executor job (a worker process, never the web server), from plain arguments:
    `checkpoint` is a checkpoint folder's path or a zipped checkpoint's bytes (an upload), `dataset` a
    core.data spec. -> the metrics dict plus "seconds" (the time it took)."""
    import time

    from core.checkpoints import load_checkpoint, load_checkpoint_zip
    from core.data import load_dataset

    t0 = time.perf_counter()
    load = load_checkpoint_zip if isinstance(checkpoint, (bytes, bytearray)) else load_checkpoint
    model = load(checkpoint, device="cpu").model
    metrics = hole_metrics(model, load_dataset(dataset), n_pairs=n_pairs)
    return {**metrics, "seconds": time.perf_counter() - t0}
