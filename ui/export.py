"""Take samples away: a download button that packs generated samples and their provenance into an .npz
(core.augment_export's format, which loads again as `npz:FILE`)."""

from __future__ import annotations

import re

import numpy as np
import streamlit as st


def download_samples_button(x, class_names, *, method: str, dataset: str, key: str, labels=None, y_soft=None,
                            source_index=None, lam=None, alpha=None, params: dict | None = None,
                            checkpoint=None, label: str = "Download these samples (.npz)") -> None:
    """Draw a download button for samples x (N, *shape) with hard `labels` (N,) or `y_soft` (N, K),
    source rows of the data set (N,) / (N, 2) and lam / alpha. checkpoint: the core Checkpoint that decoded
    them (its sha256 goes into the file). Samples without a label get a note instead of a button.
    The bytes are built only when the button is clicked; clicking does not rerun the page."""
    from core.augment_export import SAMPLER_FORMULAS, make_set, provenance_meta

    if y_soft is None:
        labels = np.asarray(labels, dtype=np.int64)
        if (labels < 0).any():
            st.caption("These samples carry no class label (prior samples), so they cannot be saved as a labelled "
                       "data set; pick a sampler that starts from labelled examples to download.")
            return
        y_soft = np.eye(len(class_names), dtype=np.float32)[labels]
    meta = provenance_meta(method, params or {}, dataset, checkpoint=checkpoint,
                           formula=SAMPLER_FORMULAS.get(method), source="Latent Lab page download")
    try:
        samples = make_set(x, y_soft, class_names, source_index=source_index, lam=lam, alpha=alpha, meta=meta)
    except ValueError as e:
        st.caption(f"Cannot offer a download: {e}")
        return
    parts = [dataset, method] + ([checkpoint.name] if checkpoint is not None else [])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)) + ".npz"
    st.download_button(label, data=samples.to_bytes, file_name=name, mime="application/octet-stream", key=key,
                       on_click="ignore", icon=":material/download:",
                       help=f"{len(samples)} samples: X, y, y_soft, source_index, lam, alpha, class_names and the "
                            f"provenance (method, parameters, data set, checkpoint sha256). Load it again with "
                            f"the data set `npz:{name}`.")
