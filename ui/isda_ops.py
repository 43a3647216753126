"""Cached calls into core.isda for the ISDA page (class covariances, directions, the bound check)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui.resources import check_compatible, checkpoint, latents


@st.cache_data(max_entries=16, show_spinner="Estimating class covariances (streamed, eqs. 9-11)…")
def class_covariance(key: str, sha: str, spec: str, batch_size: int = 256, seed: int = 0) -> dict:
    """Stream the latents in shuffled batches through core.isda.ClassCovariance.

    -> {"mean" (C, d), "cov" (C, d, d), "count" (C,), "batches" int}."""
    import torch

    from core.isda import ClassCovariance

    _, ds = check_compatible(key, spec)
    z = torch.from_numpy(latents(key, sha, spec))  # (N, d)
    est = ClassCovariance(ds.n_classes, z.shape[1])
    order = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    batches = 0
    for idx in order.split(int(batch_size)):
        est.update(z[idx], ds.y[idx])
        batches += 1
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
    from core.latent import decode_latents

    import torch

    k = len(coeffs)
    scale = np.sqrt(np.clip(lam * eigvals[:k], 0, None)) * np.asarray(coeffs, np.float32)  # (k,)
    z_new = z + scale @ eigvecs[:k]  # (d,)
    return decode_latents(checkpoint(key).model, torch.from_numpy(z_new[None].astype(np.float32))).numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def gaussian_grid(key: str, sha: str, spec: str, index: int, c: int, lam: float, n: int, seed: int,
                  batch_size: int = 256) -> np.ndarray:
    """Decode n draws from N(z_index, lam * Sigma_c) -> (n, *shape)."""
    import torch

    from core.latent import decode_latents

    cov = class_covariance(key, sha, spec, batch_size)["cov"][c].astype(np.float64)  # (d, d)
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    root = vecs * np.sqrt(np.clip(vals * lam, 0, None))  # (d, d), root @ root.T = lam * cov
    g = np.random.default_rng(seed)
    z = latents(key, sha, spec)[index].astype(np.float64)
    draws = z + g.standard_normal((n, len(z))) @ root.T  # (n, d)
    return decode_latents(checkpoint(key).model, torch.from_numpy(draws.astype(np.float32))).numpy()


@st.cache_data(max_entries=8, show_spinner="Fitting a linear classifier on the latents and sampling…")
def bound_check(key: str, sha: str, spec: str, lam: float, ms: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256),
                n_points: int = 1000, batch_size: int = 256, seed: int = 0) -> dict:
    """Monte-Carlo expected CE over N(a, lam Sigma_y) for growing M beside ISDA's closed-form bound.

    A multinomial logistic regression is fitted on the latents (the "linear classifier over the
    latents"); a fixed random subset of n_points is then scored.
    -> {"rows": [{"M", "mc_mean", "mc_stderr"}], "bound": float, "plain_ce": float, "accuracy": float}."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from core.isda import isda_loss, monte_carlo_ce

    _, ds = check_compatible(key, spec)
    z = latents(key, sha, spec)
    y = ds.y.numpy()
    clf = LogisticRegression(max_iter=500).fit(z, y)
    n_classes = ds.n_classes
    W = np.zeros((n_classes, z.shape[1]), np.float32)
    b = np.full(n_classes, -30.0, np.float32)  # classes the fit never saw get ~zero probability
    W[clf.classes_] = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
    b[clf.classes_] = clf.intercept_ if len(clf.classes_) > 2 else [-clf.intercept_[0] / 2, clf.intercept_[0] / 2]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(z), generator=g)[:n_points]
    f, yt = torch.from_numpy(z)[idx], torch.from_numpy(y)[idx]
    Wt, bt = torch.from_numpy(W), torch.from_numpy(b)
    cov = torch.from_numpy(class_covariance(key, sha, spec, batch_size)["cov"])
    rows = []
    for m in ms:
        mean, se = monte_carlo_ce(f, yt, Wt, bt, cov, lam, M=int(m), generator=g)
        rows.append({"M": int(m), "mc_mean": mean, "mc_stderr": se})
    return {
        "rows": rows,
        "bound": float(isda_loss(f, yt, Wt, bt, cov, lam)),
        "plain_ce": float(isda_loss(f, yt, Wt, bt, cov, 0.0)),
        "accuracy": float(clf.score(z, y)),
    }


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
