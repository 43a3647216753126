"""Cached calls into core for the pages (pages themselves do no tensor maths).

Every cached function takes a ModelRef (the checkpoint key *and* its sha256), so results never go stale
when a checkpoint is replaced. Return values are numpy arrays / plain data (cheap to pickle).
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from ui.resources import ModelRef, check_compatible, checkpoint, dataset, latents


def _class_firsts(y: np.ndarray, n: int) -> np.ndarray:
    """Indices: the first sample of each class, then the next of each, ... (n in all)."""
    order = []
    per_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    depth = 0
    while len(order) < n and any(depth < len(p) for p in per_class):
        order += [int(p[depth]) for p in per_class if depth < len(p)]
        depth += 1
    return np.array(order[:n])


@st.cache_data(max_entries=16, show_spinner=False)
def reconstructions(ref: ModelRef, spec: str, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(x, x_hat): n originals (one per class first) and their reconstructions."""
    from core.latent import decode_latents, encode_dataset

    ckpt, ds = check_compatible(ref.key, spec)
    idx = _class_firsts(ds.y.numpy(), n)
    x = ds.x[idx]
    return x.numpy(), decode_latents(ckpt.model, encode_dataset(ckpt.model, x)).numpy()


def decode(key: str, z: np.ndarray) -> np.ndarray:
    """z (B, d) -> x (B, *shape); not cached (this is the live slider path: ~1 ms)."""
    import torch

    from core.latent import decode_latents

    return decode_latents(checkpoint(key).model, torch.as_tensor(np.asarray(z, np.float32))).numpy()


# ----------------------------------------------------------------------------- interpolation

def pair(ref: ModelRef, spec: str, i0: int, i1: int):
    """-> (z0, z1, x0, x1, y0, y1) for dataset rows i0, i1."""
    z = latents(ref, spec)
    ds = dataset(spec)
    return z[i0], z[i1], ds.x[i0].numpy(), ds.x[i1].numpy(), int(ds.y[i0]), int(ds.y[i1])


def interpolation_frame(ref: ModelRef, spec: str, i0: int, i1: int, lam: float, mode: str) -> dict:
    """Everything the slider shows for one lambda: decoded LSI sample, pixel mixup, soft label.

    Returns {"x_lsi" (*shape), "x_mix" (*shape), "soft" (C,), "ms" server time}."""
    import torch

    from core.latent import decode_latents, interpolate_latent, lsi_soft_label, mixup_pixels

    t0 = time.perf_counter()
    z0, z1, x0, x1, y0, y1 = pair(ref, spec, i0, i1)
    model = checkpoint(ref.key).model
    z = interpolate_latent(torch.from_numpy(z0), torch.from_numpy(z1), [lam], mode=mode)  # (1, d)
    x_lsi = decode_latents(model, z)[0].numpy()
    x_mix = mixup_pixels(torch.from_numpy(x0), torch.from_numpy(x1), [lam])[0].numpy()
    soft = lsi_soft_label(y0, y1, [lam], dataset(spec).n_classes)[0].numpy()
    return {"x_lsi": x_lsi, "x_mix": x_mix, "soft": soft, "ms": (time.perf_counter() - t0) * 1e3}


@st.cache_data(max_entries=32, show_spinner=False)
def interpolation_path(ref: ModelRef, spec: str, i0: int, i1: int, mode: str,
                       lambdas: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(decoded path (T, *shape), pixel mixup path (T, *shape)) at the given lambdas."""
    import torch

    from core.latent import decode_latents, interpolate_latent, mixup_pixels

    z0, z1, x0, x1, _, _ = pair(ref, spec, i0, i1)
    z = interpolate_latent(torch.from_numpy(z0), torch.from_numpy(z1), list(lambdas), mode=mode)
    x = decode_latents(checkpoint(ref.key).model, z).numpy()
    mix = mixup_pixels(torch.from_numpy(x0), torch.from_numpy(x1), list(lambdas)).numpy()
    return x, mix


# ----------------------------------------------------------------------------- samplers

@st.cache_data(max_entries=16, show_spinner=False)
def sampler_batch(ref: ModelRef, spec: str, method: str, alpha: float, k: int, n: int,
                  seed: int, sources: tuple[int, ...]) -> tuple[np.ndarray, list[dict]]:
    """Generate n samples with a Bonn-slides sampler and decode them.

    method: "noise" | "knn-interpolate" | "knn-extrapolate" | "prior".
    -> (x (M, *shape), records: source_index / neighbour_index / label per sample)."""
    import torch

    from core import latent as L

    ckpt, ds = check_compatible(ref.key, spec)
    z = torch.from_numpy(latents(ref, spec))
    gen = torch.Generator().manual_seed(int(seed))
    src = list(sources) if sources else torch.randperm(len(z), generator=gen)[:n].tolist()
    if method == "noise":
        s = L.sample_noise(z, alpha, n_per=1, generator=gen, y=ds.y, sources=src)
    elif method in ("knn-interpolate", "knn-extrapolate"):
        s = L.knn_interpolate(z, ds.y, alpha=alpha, k=k, n_per=1, generator=gen,
                              extrapolate=method == "knn-extrapolate", sources=src)
    elif method == "prior":
        s = L.sample_prior(ckpt.model, n, alpha=alpha, generator=gen, z_train=z)  # AE: fitted Gaussian
    else:
        raise ValueError(f"unknown sampler {method!r}")
    return L.decode_latents(ckpt.model, s.z).numpy(), s.records()
