"""Shared, shareable state: dataset, checkpoint, the two chosen samples, lambda and the traversal offset.

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
}
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
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
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
        st.session_state.pop("ll_selection", None)
    st.session_state[key] = dataset
