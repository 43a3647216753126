"""Displaying samples: image tiles with captions, or feature bars for tabular data."""

from __future__ import annotations

import numpy as np
import streamlit as st


def to_uint8(x) -> list[np.ndarray]:
    """x (B, C, H, W) in [0, 1] (tensor or array) -> B arrays (H, W) or (H, W, 3) uint8."""
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # (B, C, H, W)
    return [img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1) for img in a]


def style(ds) -> dict:
    """How `samples` / `one` draw a data set's rows: images, or bars over its named features on the axis the
    browser decoder uses (latent_decoder.chart_of: fixed by the data, so bar heights compare across rows).
    Pages compute it once per run (`look = show.style(ds)`) for both."""
    if ds.is_image:
        return {"is_image": True}
    from ui.components.latent_decoder import chart_of

    return {"is_image": False, "chart": chart_of(ds)}


def samples(x, captions: list[str] | None = None, width: int = 84, is_image: bool = True,
            chart: dict | None = None) -> None:
    """A row-wrapped set of images, or for vectors one bar chart per sample (features along x, side by side on
    one value axis: `chart` from `style`, else the rows' own range and f0, f1, ... names)."""
    if len(x) == 0:
        st.caption("(nothing to show)")
        return
    if is_image:
        st.image(to_uint8(x), caption=captions, width=width)
        return
    st.altair_chart(vector_bars(x, captions, chart), use_container_width=False)


def vector_bars(x, captions: list[str] | None = None, chart: dict | None = None):
    """The altair chart of `samples` for vectors (B, F): one small bar chart per row, in row order."""
    import altair as alt
    import pandas as pd

    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    a = a.reshape(len(a), -1)
    names = list(chart["features"]) if chart and len(chart["features"]) == a.shape[1] else \
        [f"f{i}" for i in range(a.shape[1])]
    caps = list(captions) if captions and len(captions) == len(a) else [str(i) for i in range(len(a))]
    lo, hi = chart["range"] if chart else (min(0.0, float(a.min())), max(0.0, float(a.max())))
    df = pd.DataFrame({"sample": np.repeat(caps, a.shape[1]), "feature": names * len(a),
                       "value": a.ravel().clip(lo, hi)})
    per = max(60, min(400, 12 * a.shape[1]))
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("feature:N", sort=names, title=None, axis=alt.Axis(labels=a.shape[1] <= 30)),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[lo, hi]), title=None),
        color=alt.condition("datum.value >= 0", alt.value("#1f77b4"), alt.value("#d62728")),
        tooltip=["sample", "feature", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=per, height=110).facet(
        facet=alt.Facet("sample:N", sort=caps, title=None), columns=max(1, min(len(a), 640 // (per + 20))))


def one(x, caption: str | None = None, width: int = 168, is_image: bool = True, chart: dict | None = None) -> None:
    samples(x[None] if hasattr(x, "shape") and len(x.shape) in (1, 3) else x,
            [caption] if caption else None, width, is_image, chart)
