"""Displaying samples: image tiles with captions, or feature bars for tabular data."""

from __future__ import annotations

import numpy as np
import streamlit as st


def to_uint8(x) -> list[np.ndarray]:
    """x (B, C, H, W) in [0, 1] (tensor or array) -> B arrays (H, W) or (H, W, 3) uint8."""
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # (B, C, H, W)
    return [img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1) for img in a]


def samples(x, captions: list[str] | None = None, width: int = 84, is_image: bool = True) -> None:
    """A row-wrapped set of images (or, for vectors, one line chart per sample)."""
    if len(x) == 0:
        st.caption("(nothing to show)")
        return
    if is_image:
        st.image(to_uint8(x), caption=captions, width=width)
        return
    import pandas as pd

    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    df = pd.DataFrame(a.reshape(len(a), -1).T, columns=captions or [str(i) for i in range(len(a))])
    st.line_chart(df, height=220)


def one(x, caption: str | None = None, width: int = 168, is_image: bool = True) -> None:
    samples(x[None] if hasattr(x, "shape") and len(x.shape) in (1, 3) else x,
            [caption] if caption else None, width, is_image)
