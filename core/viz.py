"""Figures and image grids as pure functions: numpy / plotly in, plotly figures or uint8 arrays out.

No streamlit here: pages call these and hand the result to st.plotly_chart / st.image.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "latent_scatter",
    "selection_to_indices",
    "density_figure",
    "image_grid",
    "loss_curve",
    "spectrum_figure",
    "results_figure",
]

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]  # plotly/d3 category10: classes keep their colour across pages


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _class_colour(c: int) -> str:
    return PALETTE[c % len(PALETTE)]


# ----------------------------------------------------------------------------- latent maps

def latent_scatter(xy, y, class_names: Sequence[str] | None = None, index=None, title: str | None = None,
                   marker_size: float = 4, opacity: float = 0.75) -> go.Figure:
    """A WebGL scatter of a 2-D map: xy (N, 2), y (N,) class ids, index (N,) dataset indices
    (default 0..N-1). One trace per class; every point carries customdata = its dataset index,
    so a selection maps back with selection_to_indices whatever trace it hit."""
    xy, y = _np(xy).astype(np.float32), _np(y).astype(np.int64).reshape(-1)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(y):
        raise ValueError(f"latent_scatter needs xy (N, 2) and y (N,), got {xy.shape} and {y.shape}")
    index = np.arange(len(xy)) if index is None else _np(index).astype(np.int64).reshape(-1)
    if len(index) != len(xy):
        raise ValueError(f"index must have one entry per point, got {len(index)} for {len(xy)} points")
    fig = go.Figure()
    for c in np.unique(y):
        m = y == c
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=name, customdata=index[m],
            marker={"size": marker_size, "opacity": opacity, "color": _class_colour(int(c))},
            hovertemplate=f"class {name}<br>index %{{customdata}}<extra></extra>",
        ))
    fig.update_layout(title=title, dragmode="lasso", legend={"itemsizing": "constant", "title": "class"},
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    fig.update_yaxes(scaleanchor="x", scaleratio=1)  # equal axes: distances look like distances
    return fig


def selection_to_indices(event: Mapping[str, Any] | None) -> list[int]:
    """Dataset indices of the selected points in a st.plotly_chart(on_select=...) event.

    Accepts the whole event ({"selection": {"points": [...]}}) or its "selection" part; reads each
    point's customdata (a scalar, or a list whose first entry is the index), in selection order,
    without duplicates. Points without customdata are skipped. None / empty -> []."""
    if not event:
        return []
    selection = event.get("selection", event) if isinstance(event, Mapping) else None
    points = selection.get("points") if isinstance(selection, Mapping) else None
    out: list[int] = []
    seen: set[int] = set()
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, Mapping) else None
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            i = int(cd)
        except (TypeError, ValueError):
            continue
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def density_figure(z_or_xy, bins: int = 60, title: str | None = None, xy_range=None) -> go.Figure:
    """Density of latents: a 2-D histogram heat map with contours. Input (N, 2) is drawn as is;
    (N, d > 2) is reduced to its top two principal components first. xy_range ((x0, x1), (y0, y1))
    fixes the axes (e.g. the prior's box) so several models compare on the same window."""
    from core.projection import pca_2d  # numpy only; does not import umap

    z = _np(z_or_xy).astype(np.float32)
    xy = z if z.ndim == 2 and z.shape[1] == 2 else pca_2d(z)
    (x0, x1), (y0, y1) = xy_range or ((xy[:, 0].min(), xy[:, 0].max()), (xy[:, 1].min(), xy[:, 1].max()))
    h, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins, range=[[x0, x1 + 1e-9], [y0, y1 + 1e-9]])
    share = h.T / max(len(xy), 1)  # (bins_y, bins_x) share of points per cell
    xc, yc = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
    fig = go.Figure(go.Heatmap(x=xc, y=yc, z=np.where(share > 0, share, np.nan), colorscale="Viridis",
                               colorbar={"title": "share"}, hovertemplate="%{z:.2%}<extra></extra>"))
    empty = float((h == 0).mean())
    fig.update_layout(title=title or f"latent density ({empty:.0%} of cells empty)",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, plot_bgcolor="white")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


# ----------------------------------------------------------------------------- images

def image_grid(x, ncol: int = 8, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """x (N, C, H, W) or (N, H, W) in [0, 1] (clipped) -> uint8 image (rows*(H+pad)-pad, ...),
    (H, W) for one channel, (H, W, 3) for three. Empty cells of the last row are pad_value."""
    x = _np(x).astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid needs images (N, 1|3, H, W) or (N, H, W), got shape {x.shape}")
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1, got {ncol}")
    n, c, h, w = x.shape
    ncol = min(ncol, max(n, 1))
    nrow = max(1, -(-n // ncol))
    cells = np.full((nrow * ncol, c, h + pad, w + pad), pad_value, np.float32)
    cells[:n, :, :h, :w] = x
    grid = cells.reshape(nrow, ncol, c, h + pad, w + pad).transpose(2, 0, 3, 1, 4)  # (C, rows, H+p, cols, W+p)
    grid = grid.reshape(c, nrow * (h + pad), ncol * (w + pad))[:, : nrow * (h + pad) - pad, : ncol * (w + pad) - pad]
    img = (np.clip(np.nan_to_num(grid, nan=0.0), 0, 1) * 255 + 0.5).astype(np.uint8)
    return img[0] if c == 1 else img.transpose(1, 2, 0)


# ----------------------------------------------------------------------------- curves

def _series(history) -> dict[str, list[float]]:
    """{name: per-epoch values} from fit()'s history dict ({"epoch": [...], "recon": [...], ...})
    or from a list of on_step records ({"losses": {...}} or flat {name: float})."""
    skip = {"epoch", "seconds", "step", "total_steps", "stopped", "device"}
    if isinstance(history, Mapping):
        return {k: [float(v) for v in vs] for k, vs in history.items()
                if k not in skip and isinstance(vs, (list, tuple)) and vs and all(
                    isinstance(v, (int, float)) for v in vs)}
    out: dict[str, list[float]] = {}
    for rec in history or []:
        losses = rec.get("losses", rec)
        for k, v in losses.items():
            if k not in skip and isinstance(v, (int, float)):
                out.setdefault(k, []).append(float(v))
    return out


def loss_curve(history, title: str = "training loss") -> go.Figure:
    """One line per loss term against epoch (or record number), from fit()'s history."""
    series = _series(history)
    fig = go.Figure()
    epochs = history.get("epoch") if isinstance(history, Mapping) else None
    for name, vals in series.items():
        x = epochs if epochs and len(epochs) == len(vals) else list(range(1, len(vals) + 1))
        fig.add_trace(go.Scatter(x=x, y=vals, mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="loss", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def spectrum_figure(eigvals, top_k: int | None = None, title: str = "eigen-spectrum") -> go.Figure:
    """Bars of eigenvalues (largest first) and a line of the cumulative share of variance."""
    ev = np.sort(np.clip(_np(eigvals).astype(np.float64).reshape(-1), 0, None))[::-1]
    if top_k is not None:
        ev = ev[:top_k]
    total = _np(eigvals).clip(0).sum() or 1.0
    k = np.arange(1, len(ev) + 1)
    fig = go.Figure([
        go.Bar(x=k, y=ev, name="eigenvalue"),
        go.Scatter(x=k, y=np.cumsum(ev) / total, name="cumulative share", yaxis="y2", mode="lines+markers"),
    ])
    fig.update_layout(title=title, xaxis_title="component", yaxis_title="eigenvalue",
                      yaxis2={"overlaying": "y", "side": "right", "range": [0, 1.05], "tickformat": ".0%"},
                      legend={"orientation": "h"}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def results_figure(rows: Iterable[Mapping[str, Any]] | Any, metric: str = "accuracy",
                   title: str | None = None) -> go.Figure:
    """Few-shot results: one line per method against shots per class, with 95% CI error bars.

    rows: dicts (or a pandas DataFrame) with method, shots, mean, ci_low, ci_high. A log x axis
    when shots span more than a factor of 20 (2 ... 100 per class)."""
    if hasattr(rows, "to_dict"):  # a DataFrame
        rows = rows.to_dict("records")
    rows = list(rows)
    fig = go.Figure()
    for method in dict.fromkeys(r["method"] for r in rows):  # first-seen order
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["shots"])
        shots = [r["shots"] for r in rs]
        mean = np.array([r["mean"] for r in rs], dtype=float)
        lo = np.array([r.get("ci_low", m) for r, m in zip(rs, mean)], dtype=float)
        hi = np.array([r.get("ci_high", m) for r, m in zip(rs, mean)], dtype=float)
        fig.add_trace(go.Scatter(x=shots, y=mean, mode="lines+markers", name=str(method),
                                 error_y={"type": "data", "symmetric": False, "array": hi - mean,
                                          "arrayminus": mean - lo}))
    shots = [r["shots"] for r in rows]
    log_x = bool(shots) and min(shots) > 0 and max(shots) / min(shots) > 20
    fig.update_layout(title=title or f"{metric} against shots per class (mean, 95% CI)",
                      xaxis_title="shots per class", yaxis_title=metric,
                      xaxis_type="log" if log_x else "linear", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
