"""Sliders that decode in the browser: a Streamlit components-v2 element (inline JS, no iframe, no build).

The server sends the checkpoint's decoder (core.webdecoder spec, ~0.5 MB for the mnist5k conv nets) once
per browser tab and checkpoint; afterwards each rerun sends only the codes. While a slider moves, the
browser rebuilds the code, decodes it and paints a canvas every animation frame; the server hears the
value only when the user lets go (or the arrow keys rest), so a drag costs it no rerun.

Hand-shake, per component and checkpoint sha256:
  1. probe: the page mounts the element with the spec (unless this session's browser already holds it)
     and still draws its own server-decoded slider below (the fallback);
  2. the browser compiles the spec, runs one decode, and sets state "ready" = sha256 (or "error: ...",
     or "missing: <sha>" when it was not sent a spec it does not have);
  3. the rerun sees ready == sha256 and mounts the element "live": its sliders replace the server's.
Where the spec cannot be built (an unknown layer), would be larger than MAX_SPEC_BYTES, or the browser fails, the
page keeps decoding on the server, and says why. A vector (table) data set is painted as a bar chart over its named
features, on an axis fixed by the data (`chart_of(ds)`, core.webdecoder.vector_chart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

from ui.resources import checkpoint

_HERE = Path(__file__).resolve().parent
_mount = st.components.v2.component(
    "latent_lab_latent_decoder",
    js=(_HERE / "latent_decoder.js").read_text(encoding="utf-8"),
    css=(_HERE / "latent_decoder.css").read_text(encoding="utf-8"),
)

_HELD = "_ll_webdec_held"  # sha256s whose decoder this session's browser tab holds
_FAILED = "_ll_webdec_failed"  # sha256 -> why the browser could not run it
SERVER_PARAM = "decode"  # ?decode=server keeps the server-rerun path (the reference in bench/slider_browser.py)
# The most decoder weights sent to one browser tab (base64 on the wire). The shipped decoders are ~0.5 MB; 8 MB is
# ~1.5M float32 weights, seconds on a slow link and in the browser's JSON parser. An upload whose decoder is
# larger (a 60 KB zip of zero weights can hold 39 MB of them) decodes on the server instead.
MAX_SPEC_BYTES = 8 * 1024 * 1024


def spec_or_reason(model, max_bytes: int = MAX_SPEC_BYTES) -> dict | str:
    """model -> its browser decoder spec (core.webdecoder), or why the browser does not get one. The size is
    decided from the decoder's parameter count before the spec is built (no 39 MB of base64 for nothing)."""
    from core.webdecoder import decoder_spec, spec_bytes

    decoder = getattr(model, "decoder", None)
    n_values = sum(p.numel() for p in decoder.parameters()) if decoder is not None else 0
    too_big = "its decoder weighs {:.1f} MB, more than the {:g} MB sent to a browser".format
    wire = 4 * -(-4 * n_values // 3)  # float32 bytes in base64: 4 characters per 3 bytes
    if wire > max_bytes:
        return too_big(wire / 2**20, max_bytes / 2**20)
    try:
        spec = decoder_spec(model)
    except ValueError as e:
        return str(e)
    if spec_bytes(spec) > max_bytes:  # weights outside .parameters() (buffers) are counted as built
        return too_big(spec_bytes(spec) / 2**20, max_bytes / 2**20)
    return spec


@st.cache_resource(max_entries=8, show_spinner=False)
def _spec(key: str, sha: str, max_bytes: int) -> dict | str:
    """The decoder spec of checkpoint `key` (sha256 `sha`), or the reason it is not sent (each at most
    max_bytes, so the 8 entries hold at most 8 x MAX_SPEC_BYTES)."""
    return spec_or_reason(checkpoint(key).model, max_bytes)


def server_decode_toggle(container=st) -> bool:
    """The "Decode on the server" switch (default from ?decode=server); True = the old server-rerun path."""
    default = st.query_params.get(SERVER_PARAM) == "server"
    return container.toggle("Decode on the server", value=default, key="w_server_decode",
                            help="Off: the browser decodes while you drag (the server hears the value when you "
                                 "let go). On: every slider move is a server rerun, as before.")


def images_b64(x: np.ndarray) -> str:
    """Pixels (*shape) -> base64 float32 for a static or mixed panel."""
    from core.webdecoder import encode_floats

    return encode_floats(np.asarray(x, np.float32))


def chart_of(ds) -> dict | None:
    """A Dataset -> how the browser paints its decoded vectors (feature names, the axis); None for images."""
    if ds.is_image:
        return None
    from core.webdecoder import vector_chart

    return vector_chart(ds.x, getattr(ds, "feature_names", ()))


def chart_width(n_features: int, width: int) -> int:
    """A bar chart's width in CSS pixels: at least `width`, ~12 px per feature (room for its name under it), at most 560."""
    return int(max(width, min(560, 12 * n_features + 56)))


def live_slider(wkey: str, ckpt_key: str, sha: str, *, path: dict, sliders: list[dict], panels: list[dict],
                shape: tuple[int, ...], on_release: Callable[[list[float]], None], width: int = 168,
                slider_columns: int = 1, chart: dict | None = None) -> tuple[bool, str | None]:
    """Mount the in-browser decoder; -> (live, why_not).

    live True: the browser draws the sliders and decoded images; the caller draws no server slider.
    live False: draw the server slider (why_not says why, or None while the browser is being probed).
    path: {"kind": "linear"|"slerp", "z0", "z1"} (one slider, lambda) or {"kind": "directions", "base",
    "dirs"} (z = base + sum_i t_i dirs_i, one slider per direction). sliders: [{label, min, max, step,
    value}]. panels: [{"title", "kind": "decoded"|"mix"|"image", "caption" ("{0}", "{+0}": slider values),
    "x0"/"x1" (mix) or "x" (image): images_b64(...), "path" (decoded, optional): this panel's own path,
    instead of `path`, driven by the same sliders (the traversal: one offset slider, one path per row)}].
    on_release(values) runs before the rerun that a release causes (like a widget's on_change).
    shape (F,) (a table): every panel is a bar chart over the features; `chart` (chart_of(ds)) names them and fixes
    the axis, and the panels are widened to chart_width."""
    if len(shape) not in (1, 3):
        return False, f"data of shape {tuple(shape)} cannot be painted by the browser decoder"
    if len(shape) == 1:
        width = chart_width(int(shape[0]), width)
    failed = st.session_state.setdefault(_FAILED, {})
    if sha in failed:
        return False, failed[sha]
    spec = _spec(ckpt_key, sha, MAX_SPEC_BYTES)
    if isinstance(spec, str):
        return False, spec

    held = st.session_state.setdefault(_HELD, set())
    ready = (st.session_state.get(wkey) or {}).get("ready")
    if ready == sha:
        held.add(sha)
    elif isinstance(ready, str) and ready == f"missing: {sha}":
        held.discard(sha)
    elif isinstance(ready, str) and ready.startswith("error: ") and sha not in held:
        failed[sha] = f"the browser could not run this decoder ({ready[7:]})"
        return False, failed[sha]
    live = ready == sha

    def _released() -> None:
        values = (st.session_state.get(wkey) or {}).get("values")
        if isinstance(values, list) and len(values) == len(sliders):
            on_release([float(v) for v in values])

    data = {"sha": sha, "live": live, "spec": None if sha in held else spec, "shape": list(shape),
            "width": int(width), "slider_columns": int(slider_columns), "chart": chart if len(shape) == 1 else None,
            "path": _plain(path), "sliders": [{**s, "value": float(s["value"])} for s in sliders],
            "panels": [{**p, "path": _plain(p["path"])} if "path" in p else p for p in panels]}
    _mount(key=wkey, data=data, on_ready_change=lambda: None, on_values_change=_released)
    return live, None


def _plain(path: dict) -> dict:
    """A path's arrays as JSON lists (float64, so the browser builds its codes from the server's numbers)."""
    return {k: (np.asarray(v, np.float64).tolist() if k != "kind" else v) for k, v in path.items()}


def isda_path(z: np.ndarray, eigvals: np.ndarray, eigvecs: np.ndarray, k: int, lam: float) -> dict:
    """The ISDA sliders as a "directions" path: z + sum_i t_i sqrt(lam e_i) v_i = base + t @ dirs, with
    dirs_i = core.isda_latent.shift_along(z, ..., one-hot i, lam) - z (the same formula as the server)."""
    import torch

    from core.isda_latent import shift_along

    t = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    z_t, e_t, v_t = t(z), t(eigvals), t(eigvecs)
    dirs = [(shift_along(z_t, e_t, v_t, t(np.eye(k)[i]), lam) - z_t).numpy() for i in range(k)]  # k x (d,)
    return {"kind": "directions", "base": np.asarray(z, np.float32), "dirs": np.stack(dirs)}
