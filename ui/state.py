"""Shared, shareable state: dataset, checkpoint, the two chosen samples (or two latent codes), lambda, the
traversal offset, and the Latent map's pinned probes and decoded-manifold grid.

Session state is the source of truth; it is seeded once per session from the URL query
parameters and written back to the URL on every run, so a teacher can copy the address bar
and a student opens the same view. Bad values in a URL are ignored (and reported once).
Widgets bind to these values with `bind_widget` (a widget key mirrors a state key).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

# name -> (cast, default); the query parameter has the same name.
SHARED: dict[str, tuple[Callable[[str], Any], Any]] = {
    "dataset": (str, None),
    "ckpt": (str, None),
    "i0": (int, None),
    "i1": (int, None),
    "lam": (float, 0.5),
    "t": (float, None),  # the Beta & dimensions traversal offset, in sigma (absent from the URL until moved)
    "za": (lambda raw: parse_code(raw), None),  # an interpolation endpoint given as a latent code (a pinned probe)
    "zb": (lambda raw: parse_code(raw), None),
    "pins": (lambda raw: parse_pins(raw), None),  # the Latent map's pinned probes
    "grid": (lambda raw: parse_grid(raw), None),  # the Latent map's decoded manifold: n x n tiles (None or 0 = off)
    "hgrid": (lambda raw: parse_grid(raw), 8),  # the hole comparison's side-by-side manifolds (0 = off)
    "view": (lambda raw: parse_view(raw), None),  # the Latent map probe's zoom window (None: the whole map)
}
# how a value that is not a plain number or string is written to the URL
FORMATS: dict[str, Callable[[Any], str]] = {
    "za": lambda z: format_code(z), "zb": lambda z: format_code(z), "pins": lambda p: format_pins(p),
    "view": lambda v: format_view(v),
}
GRID_SIZES = (8, 12, 16, 20, 24)
MAX_PINS = 8
MAX_CODE_DIM = 512
PIN_METHODS = ("raw", "pca", "umap")


def parse_code(raw: str) -> tuple[float, ...]:
    """ "0.5,-1.25,..." -> a latent code (finite floats); ValueError otherwise."""
    parts = raw.split(",")
    if not 1 <= len(parts) <= MAX_CODE_DIM:
        raise ValueError(f"a code has 1..{MAX_CODE_DIM} numbers")
    code = tuple(float(p) for p in parts)
    if not all(math.isfinite(v) for v in code):
        raise ValueError("a code must be finite")
    return code


def format_code(code) -> str:
    return ",".join(f"{float(v):.6g}" for v in code)


def parse_pins(raw: str) -> list[dict]:
    """ "umap:1.5,-2:0.1,0.2,...;pca:..." -> [{"m": projection, "xy": (x, y), "z": code}, ...] (at most
    MAX_PINS, all codes of one length); ValueError otherwise."""
    pins = []
    for item in raw.split(";"):
        m, xy, z = item.split(":")
        if m not in PIN_METHODS:
            raise ValueError(f"unknown projection {m!r}")
        xy = parse_code(xy)
        if len(xy) != 2:
            raise ValueError("a pin's map position is two numbers")
        pins.append({"m": m, "xy": xy, "z": parse_code(z)})
    if not 1 <= len(pins) <= MAX_PINS or len({len(p["z"]) for p in pins}) != 1:
        raise ValueError(f"1..{MAX_PINS} pins, all codes of one length")
    return pins


def format_pins(pins) -> str:
    return ";".join(f"{p['m']}:{format_code(p['xy'])}:{format_code(p['z'])}" for p in pins)


def parse_grid(raw: str) -> int:
    """ "16" -> 16 tiles per side; "0" (or "off") -> 0, no grid."""
    n = 0 if raw == "off" else int(raw)
    if n not in (0, *GRID_SIZES):
        raise ValueError(f"grid size is 0 (off) or one of {GRID_SIZES}")
    return n


VIEW_LIMIT = 1e3  # a view's corners lie within +-1000 map windows of the default one
VIEW_MIN_SIDE = 1e-6  # and it is at least a millionth of the default window wide and high


def valid_view(values) -> tuple[float, float, float, float] | None:
    """The Latent map probe's window (x0, x1, y0, y1), relative to the map's default window ((0, 1, 0, 1): the
    default; (0.25, 0.5, 0.25, 0.5): a 4x zoom on its lower-left quarter's upper-right part) -> a tuple of floats,
    or None where it is not one: 4 finite numbers, x0 < x1 and y0 < y1 by at least VIEW_MIN_SIDE, within
    +-VIEW_LIMIT. (0, 1, 0, 1) is returned as None too (the default needs no URL parameter)."""
    try:
        v = tuple(float(x) for x in values)
    except (TypeError, ValueError):
        return None
    if len(v) != 4 or not all(math.isfinite(x) and abs(x) <= VIEW_LIMIT for x in v):
        return None
    if v[1] - v[0] < VIEW_MIN_SIDE or v[3] - v[2] < VIEW_MIN_SIDE:
        return None
    return None if v == (0.0, 1.0, 0.0, 1.0) else v


def format_view(view) -> str:
    """10 significant digits (latent_probe.js rounds its window the same way before it reports it): a window a
    millionth wide far from the origin still keeps its size."""
    return ",".join(f"{float(v):.10g}" for v in view)


def parse_view(raw: str) -> tuple[float, float, float, float] | None:
    """ "x0,x1,y0,y1" -> valid_view's window; ValueError (the link warning) where it is not one."""
    parts = raw.split(",")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise ValueError("a view is 4 numbers x0,x1,y0,y1") from None
    view = valid_view(nums)
    if view is None and nums != [0.0, 1.0, 0.0, 1.0]:
        raise ValueError(f"a view is 4 finite numbers x0,x1,y0,y1 with x0 < x1, y0 < y1, within +-{VIEW_LIMIT:g}")
    return view


_PREFIX = "ll_"
_INIT = "_ll_url_seeded"


def init() -> None:
    """Seed state from the URL, once per session."""
    if st.session_state.get(_INIT):
        return
    bad = []
    for name, (cast, default) in SHARED.items():
        raw = st.query_params.get(name)
        value = default
        if raw is not None:
            try:
                value = cast(raw)
                if isinstance(value, str) and len(value) > 200:
                    raise ValueError
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError  # float() reads "nan" and "inf": no slider or offset means that
            except (TypeError, ValueError):
                bad.append(name)
                value = default
        st.session_state[_PREFIX + name] = value
    st.session_state[_INIT] = True
    if bad:
        st.session_state["_ll_url_warning"] = f"Ignored bad link parameter(s): {', '.join(bad)}."


def get(name: str) -> Any:
    init()
    return st.session_state.get(_PREFIX + name, SHARED[name][1])


def put(name: str, value: Any) -> None:
    st.session_state[_PREFIX + name] = value


def sync_url() -> None:
    """Write the shared values to the address bar (call at the end of a page run)."""
    for name in SHARED:
        value = st.session_state.get(_PREFIX + name)
        if value is None or (isinstance(value, (list, tuple)) and not value):
            if name in st.query_params:
                del st.query_params[name]
            continue
        if not isinstance(value, (int, float, str)) and name not in FORMATS:
            continue  # a value only this session holds (never a Python repr in the URL)
        text = FORMATS[name](value) if name in FORMATS else f"{value:g}" if isinstance(value, float) else str(value)
        if st.query_params.get(name) != text:
            st.query_params[name] = text


def url_warning() -> str | None:
    return st.session_state.pop("_ll_url_warning", None)


def bind_widget(name: str, wkey: str, valid: Callable[[Any], bool] = lambda v: True,
                default: Any = None) -> dict:
    """Prepare widget `wkey` to show shared value `name`; returns kwargs for the widget call.

    Usage: ``st.slider("lambda", -0.5, 1.5, **bind_widget("lam", "w_lam", valid, 0.5))``.
    A missing or invalid value (e.g. from a hand-edited URL) is replaced by `default`
    (or the SHARED default). The on_change callback copies the widget's value into shared
    state before the rerun.
    """
    value = get(name)
    if value is None or not valid(value):
        value = default if default is not None else SHARED[name][1]
        put(name, value)
    if value is not None and st.session_state.get(wkey) != value:
        st.session_state[wkey] = value

    def _copy() -> None:
        put(name, st.session_state[wkey])

    return {"key": wkey, "on_change": _copy}


def stop_page() -> None:
    """End this page's run early, keeping the URL in step with the state shown so far."""
    sync_url()
    st.stop()


def forget_indices_of_other_datasets(dataset: str) -> None:
    """Sample indices (the two chosen samples, the map selection) belong to the dataset they were picked
    in: after a dataset switch they would silently point at unrelated samples, so they are dropped."""
    key = "_ll_indices_dataset"
    previous = st.session_state.get(key)
    if previous is not None and previous != dataset:
        put("i0", None)
        put("i1", None)
        for name in ("za", "zb", "pins"):  # codes of a model of that dataset
            put(name, None)
        st.session_state.pop("ll_selection", None)
    st.session_state[key] = dataset
