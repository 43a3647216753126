"""Projections and hole metrics for the latent map page, cached at the UI edge.

PCA and raw axes are computed inline (milliseconds). UMAP and hole metrics are jobs on the shared
executor (worker processes, never the web server), one per input for every session (ui.background);
a UMAP also lands in an on-disk cache per (checkpoint sha, dataset, settings), so a second view — even
after a restart — is immediate.
"""

from __future__ import annotations

import os

import numpy as np
import streamlit as st

from core.executor import JobHandle
from ui import background, catalog
from ui.resources import ModelRef, check_compatible, latents, model_source

UMAP_SETTINGS = {"n_neighbors": 15, "min_dist": 0.1}
HOLE_PAIRS = 300


def projection_cache_dir() -> str | None:
    """core.projection's default (repo/.cache/projections), or under LATENT_LAB_RUNS when set."""
    return str(catalog.runs_dir() / "cache" / "projections") if os.environ.get(catalog.RUNS_ENV) else None


@st.cache_data(max_entries=32, show_spinner=False)
def quick_projection(ref: ModelRef, spec: str, method: str) -> np.ndarray:
    """PCA or raw axes of the latents -> (N, 2)."""
    from core.projection import project

    z = latents(ref, spec)
    if method == "raw" and z.shape[1] != 2:
        raise ValueError(f"raw axes need a 2-d latent space; this one has d = {z.shape[1]}. Use PCA or UMAP.")
    return np.asarray(project(z, method), dtype=np.float32)


def umap_job(ref: ModelRef, spec: str) -> JobHandle:
    """The shared job computing the UMAP of these latents (core.projection.umap_projection, disk-cached):
    its result is {"xy": (N, 2), "seconds"}."""
    from core.projection import umap_projection

    key = (ref.sha256, spec, tuple(sorted(UMAP_SETTINGS.items())))
    return background.submit("umap", key, umap_projection,
                             {"z": latents(ref, spec), "key": f"{ref.sha256[:16]}-{spec}",
                              "cache_dir": projection_cache_dir(), **UMAP_SETTINGS})


def umap_stage(progress: dict) -> str:
    """What a running UMAP job last reported (core.projection._umap_fit), as words for the page: ', building
    the neighbour graph of 60,000 codes' or ', layout epoch 40 of 150'; '' before its first report."""
    if progress.get("stage") == "neighbours":
        return f", building the neighbour graph of {progress.get('points', 0):,} codes"
    if progress.get("stage") == "layout":
        return f", layout epoch {progress.get('epoch', 0)} of {progress.get('epochs', 0)}"
    return ""


def hole_job(ref: ModelRef, spec: str, n_pairs: int = HOLE_PAIRS) -> JobHandle:
    """The shared job computing core.holes.hole_metrics for one checkpoint on one dataset (its result:
    the metrics dict plus "seconds"). UiError when the checkpoint cannot read the dataset."""
    from core.holes import hole_metrics_job

    check_compatible(ref.key, spec)
    return background.submit("holes", (ref.sha256, spec, n_pairs), hole_metrics_job,
                             {"checkpoint": model_source(ref), "dataset": spec, "n_pairs": n_pairs})


SAMPLER_RECORDS = catalog.ROOT / "docs" / "records" / "samplers.csv"


@st.cache_data(max_entries=8, show_spinner=False)
def sampler_table(names: tuple[str, ...]) -> str | None:
    """The committed samplers-against-the-holes records (`python -m core samplers`, docs/records/samplers.csv) of
    these shipped checkpoints as a markdown table, mean [95 % t-interval over the sampling seeds] per figure;
    None when none of them was measured."""
    from core.sampler_table import format_table, read_records, summarise

    if not SAMPLER_RECORDS.is_file():
        return None
    rows = [r for r in summarise(read_records(SAMPLER_RECORDS)) if r["model"] in names]
    return format_table(rows) if rows else None
