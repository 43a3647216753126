"""Cached calls into core.traversal for the Beta & dimensions page (numpy / plain data out).

Every function takes a ModelRef (the checkpoint key *and* its sha256), so a replaced checkpoint never
serves a stale result.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui.resources import ModelRef, check_compatible, checkpoint, latents


@st.cache_data(max_entries=16, show_spinner="Measuring KL and reconstruction error…")
def beta_summary(ref: ModelRef, spec: str) -> dict:
    """{"kl", "kl_per_dim", "recon_mse", "kl_weight"} of one checkpoint on the dataset."""
    from core.traversal import beta_summary as summary

    ckpt, ds = check_compatible(ref.key, spec)
    out = summary(ckpt.model, ds.x)
    out["kl_weight"] = float(getattr(ckpt.model, "kl_weight", float("nan")))  # beta, or beta * d / N with beta_norm
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def dimension_scores(ref: ModelRef, spec: str, by: str) -> tuple[np.ndarray, str]:
    """(scores (d,), "kl" | "variance") per latent dimension."""
    from core.traversal import dimension_scores as scores

    ckpt, ds = check_compatible(ref.key, spec)
    s, kind = scores(ckpt.model, ds.x, by=by, z=latents(ref, spec))
    return s.numpy(), kind


@st.cache_data(max_entries=32, show_spinner=False)
def traversal(ref: ModelRef, spec: str, index: int, by: str, n_dims: int, n_steps: int) -> dict:
    """The traversal grid around dataset row `index`: the top n_dims dimensions by `by`.

    -> {"images" (R, C, *shape), "dims" (R,), "offsets" (C,), "sigma" (R,), "scores" (R,), "kind", "centre",
        "z0" (d,), "directions" (R, d) (the live slider's moves: z0 + t * directions[r])}."""
    from core.traversal import dimension_order, traversal_grid

    ckpt, ds = check_compatible(ref.key, spec)
    z = latents(ref, spec)
    if not 0 <= index < len(z):
        raise ValueError(f"sample index must be in 0..{len(z) - 1}, got {index}")
    scores, kind = dimension_scores(ref, spec, by)
    dims = dimension_order(scores)[: max(1, n_dims)]
    g = traversal_grid(ckpt.model, z[index], z, dims=dims, n_steps=n_steps, scores=scores, score_kind=kind)
    return {"images": g.images.numpy(), "dims": g.dims.numpy(), "offsets": g.offsets.numpy(),
            "sigma": g.sigma.numpy(), "scores": g.scores.numpy(), "kind": g.score_kind, "centre": g.centre,
            "z0": g.z0.numpy(), "directions": g.directions.numpy()}


@st.cache_data(max_entries=64, show_spinner=False)
def traversal_column(ref: ModelRef, z0: np.ndarray, directions: np.ndarray, t: float) -> np.ndarray:
    """The server's decode of the offset slider (the fallback of the browser's): z0 + t * directions[r]
    for every row r (a traversal()'s "z0" and "directions") -> (R, *shape)."""
    from core.traversal import traversal_column as column

    return column(checkpoint(ref.key).model, z0, directions, t).numpy()
