"""The Latent map's probes, at the UI edge: what the probe element is sent (map data, cached), the pinned
probes' table rows, and interpolation endpoints that are latent codes (a pinned probe) rather than data rows.

The maths is core.cartography's (the inverses, nearest_code) and core.holes' (hole depth); this module
caches it per checkpoint and shapes it for the page and the browser.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from ui.resources import ModelRef, checkpoint, dataset, latents

MAX_PINS = 8


def map_key(ref: ModelRef, spec: str, method: str, xy: np.ndarray) -> str:
    """The name the browser keeps a map's data under: changes with the checkpoint, data and map positions."""
    digest = hashlib.sha256(np.ascontiguousarray(xy, np.float32).tobytes()).hexdigest()[:12]
    return f"map:{ref.sha256[:12]}:{spec}:{method}:{digest}"


@st.cache_resource(max_entries=12, show_spinner=False)
def map_payload(ref: ModelRef, spec: str, method: str, xy: np.ndarray) -> dict:
    """Everything the browser needs to probe one map: the inverse (core.cartography to_browser(): raw, the PCA
    plane, or the Delaunay triangles with their codes), the map positions xy (N, 2) and labels for its scatter,
    the training codes (N, d) and their typical neighbour distance (core.holes: a tile's hole depth is its
    code's distance to the nearest training code over that). Read-only: shared by every session."""
    from core.cartography import map_inverse
    from core.webdecoder import encode_floats

    z = latents(ref, spec)  # (N, d) float32
    xy = np.asarray(xy, np.float32)
    inverse = map_inverse(method, z, xy)
    typical, threshold = _depth_scale(ref, spec)
    return {"inverse": inverse.to_browser(), "xy": encode_floats(xy.reshape(-1)), "n": int(len(xy)),
            "labels": dataset(spec).y.numpy().astype(int).tolist(), "train": encode_floats(z.reshape(-1)),
            "dim": int(z.shape[1]), "typical": typical, "hole_depth": threshold, "kind": inverse.kind}


def map_codes(ref: ModelRef, spec: str, method: str, xy: np.ndarray, points) -> tuple[np.ndarray, np.ndarray]:
    """The server's own inverse of map points (M, 2) -> (codes (M, d), inside (M,)): the reference the
    browser's probe is tested against."""
    from core.cartography import map_inverse

    return map_inverse(method, latents(ref, spec), np.asarray(xy, np.float32)).codes(points)


def pin_rows(ref: ModelRef, spec: str, pins: list[dict]) -> list[dict]:
    """One row per pinned probe: its code, nearest data point (row, class) and distance, hole depth."""
    from core.cartography import nearest_code

    z = latents(ref, spec)
    names = list(dataset(spec).class_names)
    y = dataset(spec).y.numpy()
    typical = _typical(ref, spec)
    rows = []
    for k, p in enumerate(pins):
        i, dist = nearest_code(p["z"], z)
        rows.append({"pin": k + 1, "map": p["m"], "z": ", ".join(f"{v:.2f}" for v in p["z"][:6])
                     + (", …" if len(p["z"]) > 6 else ""), "nearest": f"#{i} ({names[y[i]]})",
                     "distance": dist, "hole depth": dist / typical if typical > 0 else float("nan")})
    return rows


@st.cache_data(max_entries=16, show_spinner=False)
def _depth_scale(ref: ModelRef, spec: str) -> tuple[float, float]:
    """(typical neighbour distance, the depth beyond which a code lies in a hole) of these training codes: as
    core.holes defines them (typical_nn_distance; hole_threshold at its default 95th percentile, in units of
    the typical distance), from one N x N pass."""
    from core.holes import hole_threshold, typical_nn_distance

    z = latents(ref, spec)
    typical = typical_nn_distance(z)
    return typical, hole_threshold(z) / typical if typical > 0 else float("inf")


def _typical(ref: ModelRef, spec: str) -> float:
    return _depth_scale(ref, spec)[0]


def valid_pins(pins, dim: int) -> tuple[list[dict], str | None]:
    """The pins whose code has this model's dimension (a link made with another model) -> (pins, message)."""
    pins = list(pins or [])
    kept = [p for p in pins if len(p["z"]) == dim]
    if len(kept) == len(pins):
        return kept, None
    return kept, (f"Ignored {len(pins) - len(kept)} pinned probe(s) from the link: their codes have "
                  f"{len(pins[0]['z'])} numbers, this model's have {dim}.")


# ----------------------------------------------------------------------------- code endpoints

def endpoint(ref: ModelRef, spec: str, index: int, code) -> dict:
    """One interpolation endpoint -> {"z" (d,), "x" (*shape) the image shown for it, "y" its label, "text"}.
    A data row: its code, image and label. A code (a pinned probe): the code, its decode (there is no real
    image), and the label of the nearest training code (said so in "text")."""
    from core.cartography import nearest_code

    ds = dataset(spec)
    names = list(ds.class_names)
    if code is None:
        z = latents(ref, spec)[index]
        return {"z": z, "x": ds.x[index].numpy(), "y": int(ds.y[index]),
                "text": f"#{index} (class {names[int(ds.y[index])]})"}
    z = np.asarray(code, np.float32)
    i, dist = nearest_code(z, latents(ref, spec))
    y = int(ds.y[i])
    return {"z": z, "x": _decode(ref, tuple(float(v) for v in z)), "y": y,
            "text": f"a pinned code (nearest data point #{i}, class {names[y]}, at {dist:.3f}; its label is used)"}


@st.cache_data(max_entries=32, show_spinner=False)
def _decode(ref: ModelRef, code: tuple[float, ...]) -> np.ndarray:
    import torch

    from core.latent import decode_latents

    return decode_latents(checkpoint(ref.key).model, torch.tensor([code], dtype=torch.float32))[0].numpy()


def frame(ref: ModelRef, spec: str, a: dict, b: dict, lam: float, mode: str) -> dict:
    """ui.compute.interpolation_frame for endpoints from `endpoint` (codes or data rows)."""
    import time

    import torch

    from core.latent import decode_latents, interpolate_latent, lsi_soft_label, mixup_pixels

    t0 = time.perf_counter()
    model = checkpoint(ref.key).model
    z = interpolate_latent(torch.from_numpy(np.asarray(a["z"], np.float32)),
                           torch.from_numpy(np.asarray(b["z"], np.float32)), [lam], mode=mode)  # (1, d)
    x_lsi = decode_latents(model, z)[0].numpy()
    x_mix = mixup_pixels(torch.from_numpy(a["x"]), torch.from_numpy(b["x"]), [lam])[0].numpy()
    soft = lsi_soft_label(a["y"], b["y"], [lam], dataset(spec).n_classes)[0].numpy()
    return {"x_lsi": x_lsi, "x_mix": x_mix, "soft": soft, "ms": (time.perf_counter() - t0) * 1e3}


def path(ref: ModelRef, spec: str, a: dict, b: dict, mode: str, lambdas) -> tuple[np.ndarray, np.ndarray]:
    """ui.compute.interpolation_path for endpoints from `endpoint`."""
    import torch

    from core.latent import decode_latents, interpolate_latent, mixup_pixels

    z = interpolate_latent(torch.from_numpy(np.asarray(a["z"], np.float32)),
                           torch.from_numpy(np.asarray(b["z"], np.float32)), list(lambdas), mode=mode)
    x = decode_latents(checkpoint(ref.key).model, z).numpy()
    mix = mixup_pixels(torch.from_numpy(a["x"]), torch.from_numpy(b["x"]), list(lambdas)).numpy()
    return x, mix
