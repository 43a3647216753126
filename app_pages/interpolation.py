"""Interpolation: LSI between two samples with a lambda slider, pixel mixup beside it, and the
Bonn-slides samplers (noise, kNN inter/extrapolation, prior)."""

import numpy as np
import pandas as pd
import streamlit as st

from ui import probe_ops, show, state
from ui.components import latent_decoder
from ui.compute import interpolation_frame, interpolation_path, sampler_batch
from ui.resources import ModelRef, UiError, friendly, page_inputs
from ui.sidebar import shared_sidebar

sel = shared_sidebar("interpolation")
st.title("Interpolation")
st.markdown(
    "Latent space interpolation (LSI, Liu et al. 2018) makes a new training sample by decoding "
    "(1 − λ)·z₀ + λ·z₁ between the codes of two images and labels it with the λ-weighted mix of their "
    "labels (half-half at λ = 0.5). Pixel **mixup** of the same pair is shown beside it: "
    "compare how the decoded sample stays a plausible digit while mixup is a double exposure. "
    "Try first: move λ slowly from 0 to 1, then beyond 1 (extrapolation), then switch the sidebar to an "
    "AE or Gaussian-prior checkpoint and watch the midpoint get worse."
)


ckpt, ds, z_all = page_inputs(sel)  # encode once here, not inside the slider's timing
look = show.style(ds)  # how this data's rows are drawn (images, or bars on a fixed axis)

n, names = len(ds), list(ds.class_names)
y = ds.y.numpy()


def _first_of(c: int) -> int:
    hits = np.flatnonzero(y == c)
    return int(hits[0]) if len(hits) else 0


if not isinstance(state.get("i0"), int) or not 0 <= state.get("i0") < n:
    state.put("i0", _first_of(1 if ds.n_classes > 7 else 0))
if not isinstance(state.get("i1"), int) or not 0 <= state.get("i1") < n:
    state.put("i1", _first_of(7 if ds.n_classes > 7 else min(1, ds.n_classes - 1)))

# an endpoint may be a latent code (a probe pinned on the Latent map, `za` / `zb` in the URL) instead of a sample
for end, label in (("za", "A"), ("zb", "B")):
    code = state.get(end)
    if code is not None and len(code) != z_all.shape[1]:
        st.warning(f"Ignored the code given for endpoint {label}: it has {len(code)} numbers, this model's codes "
                   f"have {z_all.shape[1]}. Endpoint {label} is a sample again.")
        state.put(end, None)


def _samples_again(*ends: str) -> None:
    """Picking a sample for an endpoint replaces a code given for it."""
    for end in ends:
        state.put(end, None)


# ----------------------------------------------------------------------------- pick the pair
st.subheader("1 · Pick two samples")
rng_key = "_ll_pick_counter"


def _rng() -> np.random.Generator:
    st.session_state[rng_key] = st.session_state.get(rng_key, 0) + 1
    return np.random.default_rng(st.session_state[rng_key])


def _from_classes() -> None:
    g = _rng()
    a, b = st.session_state["w_cls_a"], st.session_state["w_cls_b"]
    state.put("i0", int(g.choice(np.flatnonzero(y == names.index(a)))))
    state.put("i1", int(g.choice(np.flatnonzero(y == names.index(b)))))
    _samples_again("za", "zb")


def _random_pair() -> None:
    g = _rng()
    i0 = int(g.integers(n))
    others = np.flatnonzero(y != y[i0])
    state.put("i0", i0)
    state.put("i1", int(g.choice(others)) if len(others) else int(g.integers(n)))
    _samples_again("za", "zb")


def _from_map() -> None:
    chosen = [i for i in st.session_state.get("ll_selection") or [] if 0 <= i < n]
    if len(chosen) >= 2:
        state.put("i0", int(chosen[0]))
        state.put("i1", int(chosen[1]))
        _samples_again("za", "zb")


how = st.radio("How", ["By class", "Random", "By index", "From the map's selection"], horizontal=True,
               key="w_pick_how", label_visibility="collapsed")
c1, c2, c3, c4, c5 = st.columns([2, 2, 2, 1.5, 1.5], vertical_alignment="bottom")
if how == "By class":
    c1.selectbox("Class of A", names, index=int(y[state.get("i0")]), key="w_cls_a")
    c2.selectbox("Class of B", names, index=int(y[state.get("i1")]), key="w_cls_b")
    c3.button("Draw a pair", on_click=_from_classes, width="stretch")
elif how == "Random":
    c1.button("Random pair (two classes)", on_click=_random_pair, width="stretch")
elif how == "From the map's selection":
    chosen = [i for i in st.session_state.get("ll_selection") or [] if 0 <= i < n]
    c1.caption(f"{len(chosen)} point(s) selected on **Latent map & holes**."
               + ("" if len(chosen) >= 2 else " Select at least two there first."))
    c2.button("Use the first two selected", on_click=_from_map, disabled=len(chosen) < 2, width="stretch")


def _index_widget(name: str, wkey: str, end: str) -> dict:
    """bind_widget for an index box; typing an index makes that endpoint a sample again."""
    kw = state.bind_widget(name, wkey, lambda v: 0 <= v < n)
    copy = kw["on_change"]
    kw["on_change"] = lambda: (copy(), _samples_again(end))
    return kw


i0 = c4.number_input(f"Index of A (0–{n - 1})", 0, n - 1, step=1, **_index_widget("i0", "w_i0", "za"))
i1 = c5.number_input(f"Index of B (0–{n - 1})", 0, n - 1, step=1, **_index_widget("i1", "w_i1", "zb"))
state.put("i0", int(i0))
state.put("i1", int(i1))
ref_now = ModelRef(sel.ckpt, ckpt.sha256)
end_a = probe_ops.endpoint(ref_now, sel.dataset, int(i0), state.get("za"))
end_b = probe_ops.endpoint(ref_now, sel.dataset, int(i1), state.get("zb"))
codes_given = state.get("za") is not None or state.get("zb") is not None
st.caption(f"A = {end_a['text']}, B = {end_b['text']}.")
if codes_given:
    st.button("Use samples for both endpoints", key="w_codes_clear", on_click=_samples_again, args=("za", "zb"))


# ----------------------------------------------------------------------------- slider + previews
LAM_LABEL = "λ  (outside [0, 1] is extrapolation)"
MIX = "Pixel" if ds.is_image else "Feature"   # mixup in the input space: pixels, or a table's features


def _released(values: list[float]) -> None:
    """The browser slider was let go: its lambda becomes the shared one (URL, soft label, path)."""
    state.put("lam", round(min(1.5, max(-0.5, values[0])), 2))


def _browser_panel(mode: str, lam: float) -> tuple[bool, str | None]:
    """The in-browser decoder for the LSI slider (decoded sample + pixel mixup, painted while dragging)."""
    z0, z1, x0, x1 = end_a["z"], end_b["z"], end_a["x"], end_b["x"]
    return latent_decoder.live_slider(
        "w_lam_browser", sel.ckpt, ckpt.sha256, path={"kind": mode, "z0": z0, "z1": z1},
        sliders=[{"label": LAM_LABEL, "min": -0.5, "max": 1.5, "step": 0.05, "value": lam}],
        panels=[{"title": "Decoded LSI sample", "kind": "decoded", "caption": "λ = {0}"},
                {"title": f"{MIX} mixup, same λ", "kind": "mix", "caption": "λ = {0}",
                 "x0": latent_decoder.images_b64(x0), "x1": latent_decoder.images_b64(x1)}],
        shape=tuple(x0.shape), on_release=_released, chart=look.get("chart"))


@st.fragment
def slider_panel() -> None:
    with friendly("Interpolation"):
        st.subheader("2 · Move along the path")
        c1, c2, c3 = st.columns([3, 1.3, 1.7], vertical_alignment="bottom")
        mode = c2.radio("Path", ["linear", "slerp"], horizontal=True, key="w_mode",
                        help="slerp follows the great circle between the two codes (White 2016).")
        on_server = latent_decoder.server_decode_toggle(c3)
        valid = lambda v: isinstance(v, float | int) and -0.5 <= v <= 1.5  # noqa: E731
        if not valid(state.get("lam")):
            state.put("lam", 0.5)
        live_col, label_col = st.columns([3, 2])  # empty (no height) while the server decodes
        with live_col:
            live, why = (False, None) if on_server else _browser_panel(mode, float(state.get("lam")))
        if live:
            lam = float(state.get("lam"))
            c1.caption("Drag λ: your browser decodes every step; the page follows when you let go.")
        else:
            lam = c1.slider(LAM_LABEL, -0.5, 1.5, step=0.05, **state.bind_widget("lam", "w_lam", valid))
            if why:
                c1.caption(f"Decoding on the server: {why}.")
        state.put("lam", float(lam))
        state.sync_url()
        if codes_given:
            f = probe_ops.frame(ref_now, sel.dataset, end_a, end_b, float(lam), mode)
        else:
            f = interpolation_frame(ref_now, sel.dataset, int(i0), int(i1), float(lam), mode)
        cols = st.columns([1, 1, 2]) if not live else [None, None, label_col]
        if not live:
            with cols[0]:
                st.markdown("**Decoded LSI sample**")
                show.one(f["x_lsi"], f"λ = {lam:.2f}", width=168, **look)
            with cols[1]:
                st.markdown(f"**{MIX} mixup, same λ**")
                show.one(f["x_mix"], f"λ = {lam:.2f}", width=168, **look)
        with cols[2]:
            st.markdown(f"**LSI soft label at λ = {lam:.2f}** (λ-weighted, two-hot at 0.5)")
            st.bar_chart(pd.DataFrame({"weight": f["soft"]}, index=names), height=200)
        if not live:
            st.caption(f"Server time for this λ: {f['ms']:.1f} ms")
        st.session_state["_ll_last_frame_ms"] = f["ms"]

        lambdas = tuple(float(v) for v in np.round(np.linspace(-0.5, 1.5, 9), 3))
        if codes_given:
            path, mix = probe_ops.path(ref_now, sel.dataset, end_a, end_b, mode, lambdas)
        else:
            path, mix = interpolation_path(ref_now, sel.dataset, int(i0), int(i1), mode, lambdas)
        caps = [f"λ={v:g}" for v in lambdas]
        st.markdown(f"**The whole path ({mode})** — decoded, then {MIX.lower()} mixup")
        show.samples(path, caps, width=72, **look)
        show.samples(mix, caps, width=72, **look)


slider_panel()

# ----------------------------------------------------------------------------- samplers
st.subheader("3 · Samplers from the Bonn slides")
st.markdown(
    "Other ways to make new latent codes: **noise** z + ε with ε ~ N(0, α²I); **kNN interpolation / "
    "extrapolation** z ± α·(z_k − z) towards (or away from) one of the k nearest neighbours of the same "
    "class; **prior** samples scaled by α. Each tile says where it came from."
)
c1, c2, c3, c4 = st.columns(4)
method = c1.selectbox("Sampler", ["knn-interpolate", "knn-extrapolate", "noise", "prior"], key="w_s_method")
alpha = c2.slider("α", 0.0, 2.0, 0.5, 0.05, key="w_s_alpha")
k = c3.number_input("k neighbours", 1, 50, 5, key="w_s_k", disabled=not method.startswith("knn"))
count = c4.number_input("How many", 1, 32, 12, key="w_s_n")
around_a = st.checkbox(f"Only around sample A (#{i0})", value=False, key="w_s_around",
                       disabled=method == "prior")
seed = st.number_input("Seed", 0, 10_000, 0, key="w_s_seed")
try:
    sources = tuple([int(i0)] * int(count)) if around_a and method != "prior" else ()
    xs, recs = sampler_batch(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset, method, float(alpha), int(k), int(count),
                             int(seed), sources)
except (UiError, ValueError) as e:
    st.error(f"Could not sample: {e}")
else:
    caps = []
    for r in recs:
        if r["source_index"] < 0:
            caps.append("prior")
        elif r["neighbour_index"] >= 0:
            caps.append(f"#{r['source_index']}→#{r['neighbour_index']} ({names[r['label']]})")
        else:
            caps.append(f"#{r['source_index']}+ε ({names[r['label']]})")
    show.samples(xs, caps, width=84, **look)
    from ui.export import download_samples_button
    download_samples_button(xs, names, method=method, dataset=sel.dataset, checkpoint=ckpt, key="w_s_download",
                            labels=[r["label"] for r in recs], alpha=alpha,
                            source_index=[[r["source_index"], r["neighbour_index"]] for r in recs],
                            params={"alpha": alpha, "k": int(k), "n": int(count), "seed": int(seed),
                                    "around_index": int(i0) if sources else None})

state.sync_url()
