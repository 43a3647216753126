"""Cached calls into core.saliency for the Saliency page: the trained classifier pair, its maps as coloured
tiles, and a few saliencymix examples. Everything returned is numpy / plain data."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui.resources import dataset

TILE = 64  # pixels per tile side (nearest-neighbour upscaling keeps 8x8 digits crisp)


@st.cache_resource(max_entries=4, show_spinner=False)
def trained_pair(spec: str, shots: int, method: str, seed: int, steps: int):
    """core.saliency.train_pair on the shared data set; one object for all sessions (never modified)."""
    from core.saliency import train_pair

    return train_pair(dataset(spec), shots, method, seed=seed, steps=steps)


def _upscale(a: np.ndarray) -> np.ndarray:
    """(H, W[, 3]) -> about TILE px a side, nearest neighbour."""
    k = max(1, TILE // a.shape[0])
    return np.repeat(np.repeat(a, k, 0), k, 1)


def _heat(m: np.ndarray) -> np.ndarray:
    """A map (C, H, W) >= 0 -> (H, W, 3) uint8, channels summed, scaled by its own maximum ('inferno')."""
    from matplotlib import colormaps

    s = m.sum(0)
    s = s / s.max() if s.max() > 0 else s
    return (colormaps["inferno"](s)[..., :3] * 255).astype(np.uint8)


def _gray(x: np.ndarray) -> np.ndarray:
    x = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)                # (C, H, W)
    return x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)


@st.cache_data(max_entries=16, show_spinner=False)
def pair_maps(spec: str, shots: int, method: str, seed: int, steps: int, n_images: int, pick_seed: int,
              smoothgrad_samples: int = 16) -> dict:
    """Saliency of both classifiers on n_images test images (one per class first, drawn with pick_seed).

    -> {"images": [tile], "truth": [class name], "index": [row], "accuracy": {name: acc},
        "models": {name: {"pred": [class name], "conf": [p], "maps": {method: [tile]},
                          "on_ink": {method: share of saliency on ink pixels}}}}"""
    import torch

    from core.saliency import METHODS, saliency_maps

    ds = dataset(spec)
    pair = trained_pair(spec, shots, method, seed, steps)
    test = pair.test_index
    g = np.random.default_rng(pick_seed)
    y = ds.y[test].numpy()
    by_class = [g.permutation(np.flatnonzero(y == c)) for c in range(ds.n_classes)]
    rows = [int(test[p[0]]) for p in by_class if len(p)][:n_images]
    x = ds.x[rows]
    ink = (x.sum(1) > 0.25 * x.shape[1]).numpy()                             # (B, H, W)
    names = ds.class_names
    out = {"images": [_upscale(_gray(a)) for a in x.numpy()], "truth": [names[int(ds.y[i])] for i in rows],
           "index": rows, "accuracy": dict(pair.accuracy), "models": {}}
    for name, model in (("none", pair.plain), (method, pair.augmented)):
        with torch.no_grad():
            probs = torch.softmax(model(x), 1)
        maps = saliency_maps(model, x, METHODS, generator=torch.Generator().manual_seed(pick_seed),
                             n_samples=smoothgrad_samples)
        on_ink = {}
        for m, v in maps.items():
            s = v.sum(1).numpy()                                               # (B, H, W)
            on_ink[m] = float((s * ink).sum() / max(s.sum(), 1e-12))
        out["models"][name] = {
            "pred": [names[int(p)] for p in probs.argmax(1)], "conf": probs.max(1).values.tolist(),
            "maps": {m: [_upscale(_heat(a)) for a in v.numpy()] for m, v in maps.items()}, "on_ink": on_ink}
    out["ink_area"] = float(ink.mean())
    return out


@st.cache_data(max_entries=8, show_spinner=False)
def saliencymix_examples(spec: str, n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """n saliencymix results on random images of the data set: (tiles, captions 'a% c0 + b% c1')."""
    import torch

    from core.augment import augment
    import torch.nn.functional as F

    ds = dataset(spec)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[: max(2 * n, 2)]
    x, y = ds.x[idx], F.one_hot(ds.y[idx], ds.n_classes).float()
    out, y2 = augment("saliencymix", x, y, gen, params={"saliencymix": {"alpha": 2.0}})
    caps = []
    for row in y2[:n]:
        top = torch.argsort(row, descending=True)[:2]
        parts = [f"{row[c]:.0%} {ds.class_names[int(c)]}" for c in top if row[c] > 0]
        caps.append(" + ".join(parts))
    return [_upscale(_gray(a)) for a in out[:n].numpy()], caps
