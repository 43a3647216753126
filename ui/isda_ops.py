"""Cached calls into core.isda for the ISDA page (class covariances, directions, the bound check)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui.resources import ModelRef, check_compatible, checkpoint, latents


@st.cache_data(max_entries=16, show_spinner="Estimating class covariances (streamed, eqs. 9-11)…")
def class_covariance(ref: ModelRef, spec: str, batch_size: int = 256, seed: int = 0) -> dict:
    """core.isda_latent.stream_class_covariance on the cached latents.

    -> {"mean" (C, d), "cov" (C, d, d), "count" (C,), "batches" int}."""
    import torch

    from core.isda_latent import stream_class_covariance

    _, ds = check_compatible(ref.key, spec)
    z = torch.from_numpy(latents(ref, spec))  # (N, d)
    est, batches = stream_class_covariance(z, ds.y, ds.n_classes, batch_size, seed)
    return {"mean": est.mean.numpy(), "cov": est.cov.numpy(), "count": est.count.numpy(), "batches": batches}


def spectrum(cov_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All eigenpairs of one class covariance (d, d), largest first -> (eigvals (d,), eigvecs (d, d) rows)."""
    import torch

    from core.isda import semantic_directions

    vals, vecs = semantic_directions(torch.from_numpy(cov_c), cov_c.shape[0])
    return vals.numpy(), vecs.numpy()


def move_along(key: str, z: np.ndarray, eigvals: np.ndarray, eigvecs: np.ndarray, coeffs: list[float],
               lam: float) -> np.ndarray:
    """Decode z + sum_i t_i sqrt(lam * eigval_i) v_i (t_i = coeffs) -> x (1, *shape)."""
    import torch

    from core.isda_latent import shift_along
    from core.latent import decode_latents

    t = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    z_new = shift_along(t(z), t(eigvals), t(eigvecs), t(coeffs), lam)  # (d,)
    return decode_latents(checkpoint(key).model, z_new[None]).numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def gaussian_grid(ref: ModelRef, spec: str, index: int, c: int, lam: float, n: int, seed: int,
                  batch_size: int = 256) -> np.ndarray:
    """Decode n draws from N(z_index, lam * Sigma_c) -> (n, *shape)."""
    import torch

    from core.isda_latent import sample_around
    from core.latent import decode_latents

    cov = torch.from_numpy(class_covariance(ref, spec, batch_size)["cov"][c])  # (d, d)
    z = torch.from_numpy(latents(ref, spec)[index])
    draws = sample_around(z, cov, lam, n, torch.Generator().manual_seed(seed))  # (n, d)
    return decode_latents(checkpoint(ref.key).model, draws).numpy()


@st.cache_data(max_entries=8, show_spinner="Fitting a linear classifier on the latents and sampling…")
def bound_check(ref: ModelRef, spec: str, lam: float, ms: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256),
                n_points: int = 1000, batch_size: int = 256, seed: int = 0) -> dict:
    """core.isda_latent.linear_bound_check on the cached latents and class covariances."""
    import torch

    from core.isda_latent import linear_bound_check

    _, ds = check_compatible(ref.key, spec)
    cov = torch.from_numpy(class_covariance(ref, spec, batch_size)["cov"])
    return linear_bound_check(latents(ref, spec), ds.y.numpy(), ds.n_classes, cov, lam, ms, n_points, seed)


def bound_figure(res: dict):
    """Monte-Carlo CE (± 95% CI) against M on a log axis, with the ISDA bound and plain CE as lines."""
    import plotly.graph_objects as go

    ms = [r["M"] for r in res["rows"]]
    mean = [r["mc_mean"] for r in res["rows"]]
    ci = [1.96 * r["mc_stderr"] for r in res["rows"]]
    fig = go.Figure([
        go.Scatter(x=ms, y=mean, mode="lines+markers", name="Monte-Carlo CE (± 95% CI)",
                   error_y={"type": "data", "array": ci}),
        go.Scatter(x=ms, y=[res["bound"]] * len(ms), mode="lines", name="ISDA upper bound",
                   line={"dash": "dash"}),
        go.Scatter(x=ms, y=[res["plain_ce"]] * len(ms), mode="lines", name="plain CE (λ = 0)",
                   line={"dash": "dot"}),
    ])
    fig.update_layout(xaxis_type="log", xaxis_title="M (explicit samples per feature)", yaxis_title="cross-entropy",
                      height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": 1.15, "x": 0})
    return fig
