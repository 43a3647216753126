"""Probe the latent space anywhere on a 2-D map, decoded in the browser: a Streamlit components-v2 element.

One element draws one or more maps (one per model: the Latent map, or 2-4 models of the hole comparison) on
canvases of its own, and beside each the image decoded from the code under the pointer; the map point -> code
inverse is core.cartography's (raw axes, the PCA plane, barycentric over the Delaunay triangles of a UMAP),
ported to JS, and the decoder is latent_decoder.js's (its library part is prepended to latent_probe.js, so
both elements share one decoder implementation and this tab's cache of compiled decoders). Several maps
share one relative view (wheel: zoom, drag: pan) and one pointer. A click pins the probe (single map only):
`on_pin({"xy", "z"})` runs before the rerun it causes. `grid` n > 0 draws an n x n decoded manifold over the
window, each tile bordered by its hole depth (core.holes.hole_depth_of, computed in the browser from the
training codes and the typical neighbour distance the server sends). A table (shape (F,)): the probe is the bar
chart latent_decoder.js paints for a decoded row (the features named, on the data's fixed axis: `chart`, as the
other pages), with the same readout and pins; there is no grid (n x n tiles of tiny bar charts cannot be read).

Hand-shake: decoder specs ("dec:<sha256>") and map data (ui.probe_ops.map_key) are sent as blobs until the
browser lists them in its state "have"; afterwards a rerun sends only their names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st

from ui import state
from ui.components import latent_decoder

_HERE = Path(__file__).resolve().parent
_DECODER_JS = (_HERE / "latent_decoder.js").read_text(encoding="utf-8")
_LIBRARY_END = "\nexport default function"
assert _LIBRARY_END in _DECODER_JS, "latent_decoder.js must end with its `export default function` component"
_mount = st.components.v2.component(
    "latent_lab_latent_probe",
    js=_DECODER_JS.split(_LIBRARY_END)[0] + "\n" + (_HERE / "latent_probe.js").read_text(encoding="utf-8"),
    css=(_HERE / "latent_probe.css").read_text(encoding="utf-8"),
)


def probe_maps(wkey: str, panels: list[dict], *, shape: tuple[int, ...], grid: int = 0, pinnable: bool = False,
               on_pin: Callable[[dict], None] | None = None, size: int = 460, probe_size: int = 140,
               view: tuple[float, float, float, float] | None = None,
               on_view: Callable[[tuple | None], None] | None = None, chart: dict | None = None) -> str | None:
    """Mount the probe element; -> None when mounted, else why it cannot be (the page says so).

    panels: [{"title", "ckpt_key", "sha": checkpoint sha256, "map_key": str, "map": () -> the map data
    (ui.probe_ops.map_payload; called only when the browser does not hold it yet), "pins": [{"xy": (x, y)}]}].
    shape: the decoded image's (C, H, W), or a table row's (F,): then the probe is a bar chart over the features,
    `chart` (latent_decoder.chart_of(ds): their names and the data's fixed axis; None: f0.. on [-3, 3]) and `grid`
    is ignored (no decoded grid for tables: the page says so). view: the shared zoom window relative to each
    map's default one (ui.state.valid_view; None: the default); the browser adopts it whenever it changes here,
    and reports its own (once a wheel zoom or drag pan has rested) to `on_view(window or None)`, which runs before
    the rerun it causes."""
    if len(shape) not in (1, 3):
        return f"data of shape {tuple(shape)} cannot be painted by the browser decoder"
    vector = len(shape) == 1
    blobs, held = {}, set(((st.session_state.get(wkey) or {}).get("have") or {}).get("keys") or [])
    errors = ((st.session_state.get(wkey) or {}).get("have") or {}).get("errors") or []
    if errors:
        return f"the browser could not run this ({errors[0]})"
    for p in panels:
        spec = latent_decoder._spec(p["ckpt_key"], p["sha"], latent_decoder.MAX_SPEC_BYTES)
        if isinstance(spec, str):
            return f"{p['title']}: {spec}"
        dec_key = f"dec:{p['sha']}"
        blobs[dec_key] = None if dec_key in held else spec
        blobs[p["map_key"]] = None if p["map_key"] in held else p["map"]()

    def _pinned() -> None:
        pin = (st.session_state.get(wkey) or {}).get("pin")
        if on_pin and isinstance(pin, dict) and isinstance(pin.get("z"), list) and isinstance(pin.get("xy"), list):
            on_pin(pin)

    def _viewed() -> None:
        if on_view:
            on_view(state.valid_view((st.session_state.get(wkey) or {}).get("view") or (0, 1, 0, 1)))

    data = {"blobs": blobs, "shape": list(shape), "grid": 0 if vector else int(grid or 0),
            "pinnable": bool(pinnable),
            "view": list(view) if view else None, "reports_view": on_view is not None,
            "size": int(size), "probe_size": int(probe_size),
            "chart": chart if vector else None,
            "chart_width": latent_decoder.chart_width(int(shape[0]), 168) if vector else None,
            "panels": [{"title": p["title"], "decoder": p["sha"], "map": p["map_key"],
                        "pins": [{"xy": [float(v) for v in q["xy"]]} for q in p.get("pins") or []]} for p in panels]}
    _mount(key=wkey, data=data, on_have_change=lambda: None, on_pin_change=_pinned, on_view_change=_viewed)
    return None
