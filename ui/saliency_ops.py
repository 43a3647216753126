"""The Saliency page's work: the classifier pair and its maps as a shared job in a worker process (never
the web server), their colouring into tiles, and a few saliencymix examples. Everything returned is numpy /
plain data."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.executor import JobHandle
from ui import background
from ui.resources import dataset

TILE = 64  # pixels per tile side (nearest-neighbour upscaling keeps 8x8 digits crisp)


SMOOTHGRAD_SAMPLES = 16


def pair_job(spec: str, shots: int, method: str, seed: int, steps: int, n_images: int, pick_seed: int) -> JobHandle:
    """The shared job training the classifier pair and drawing its maps (core.saliency.pair_saliency) in a
    worker process, once per input for every session; its result holds plain arrays (pair_tiles draws them)."""
    from core.saliency import pair_saliency

    kwargs = {"dataset": spec, "shots": shots, "method": method, "seed": seed, "steps": steps, "n_images": n_images,
              "pick_seed": pick_seed, "smoothgrad_samples": SMOOTHGRAD_SAMPLES}
    return background.submit("saliency-pair", tuple(kwargs.values()), pair_saliency, kwargs)


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


def pair_tiles(raw: dict, class_names: list[str]) -> dict:
    """A pair_job result (plain arrays) -> what the page shows (milliseconds: colouring small maps):

    {"images": [tile], "truth": [class name], "index": [row], "accuracy": {name: acc}, "ink_area": share,
     "models": {name: {"pred": [class name], "conf": [p], "maps": {method: [tile]},
                       "on_ink": {method: share of saliency on ink pixels}}}}"""
    ink = raw["ink"]                                                          # (B, H, W)
    out = {"images": [_upscale(_gray(a)) for a in raw["x"]], "index": list(raw["rows"]),
           "truth": [class_names[int(t)] for t in raw["truth"]],
           "accuracy": dict(raw["accuracy"]), "ink_area": float(ink.mean()), "models": {}}
    for name, m in raw["models"].items():
        on_ink = {}
        for method, v in m["maps"].items():
            s = v.sum(1)                                                      # (B, H, W)
            on_ink[method] = float((s * ink).sum() / max(s.sum(), 1e-12))
        out["models"][name] = {"pred": [class_names[int(p)] for p in m["pred"]], "conf": list(m["conf"]),
                               "maps": {k: [_upscale(_heat(a)) for a in v] for k, v in m["maps"].items()},
                               "on_ink": on_ink}
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
