"""Projections and hole metrics for the latent map page, cached at the UI edge.

PCA and raw axes are computed inline (milliseconds); UMAP runs as a shared background job
(the first fit in a process JIT-compiles for about a minute) and lands in an on-disk cache per
(checkpoint sha, dataset, settings), so a second view — even after a restart — is immediate.
"""

from __future__ import annotations

import os
import time

import numpy as np
import streamlit as st

from ui import background, catalog
from ui.resources import check_compatible, latents

UMAP_SETTINGS = {"n_neighbors": 15, "min_dist": 0.1}
WARM_ENV = "LATENT_LAB_WARM_UMAP"  # "0": do not pre-compile UMAP when the map page opens (tests)


def projection_cache_dir() -> str | None:
    """core.projection's default (repo/.cache/projections), or under LATENT_LAB_RUNS when set."""
    return str(catalog.runs_dir() / "cache" / "projections") if os.environ.get(catalog.RUNS_ENV) else None


def warm_umap_in_background() -> None:
    """Start umap's one-off JIT compile in a shared background thread (once per process)."""
    if os.environ.get(WARM_ENV, "1") == "0":
        return

    def warm() -> float:
        from core.projection import warm_umap

        return warm_umap()

    background.submit("warm-umap", (), warm)


@st.cache_data(max_entries=32, show_spinner=False)
def quick_projection(key: str, sha: str, spec: str, method: str) -> np.ndarray:
    """PCA or raw axes of the latents -> (N, 2)."""
    from core.projection import project

    z = latents(key, sha, spec)
    if method == "raw" and z.shape[1] != 2:
        raise ValueError(f"raw axes need a 2-d latent space; this one has d = {z.shape[1]}. Use PCA or UMAP.")
    return np.asarray(project(z, method), dtype=np.float32)


def umap_job(key: str, sha: str, spec: str):
    """The shared background job computing the UMAP of these latents (disk-cached)."""
    z = latents(key, sha, spec)
    cache_dir = projection_cache_dir()

    def fit() -> dict:
        from core.projection import project_cached

        t0 = time.perf_counter()
        xy = np.asarray(project_cached(z, f"{sha[:16]}-{spec}", "umap", cache_dir, **UMAP_SETTINGS),
                        dtype=np.float32)
        return {"xy": xy, "seconds": time.perf_counter() - t0}

    return background.submit("umap", (sha, spec, tuple(sorted(UMAP_SETTINGS.items()))), fit)


def hole_job(key: str, sha: str, spec: str, n_pairs: int = 300):
    """Shared background job: core.holes.hole_metrics for one checkpoint on one dataset."""
    ckpt, ds = check_compatible(key, spec)

    def run() -> dict:
        from core.holes import hole_metrics

        t0 = time.perf_counter()
        m = hole_metrics(ckpt.model, ds, n_pairs=n_pairs)
        m["seconds"] = time.perf_counter() - t0
        return m

    return background.submit("holes", (sha, spec, n_pairs), run)
