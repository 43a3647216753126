"""ISDA semantic directions: class covariance of the latents, its eigen-directions as sliders,
N(z, lambda Sigma_y) samples, and the closed-form bound against Monte-Carlo."""

import numpy as np
import pandas as pd
import streamlit as st

from ui import show, state
from ui.components import latent_decoder
from ui.isda_ops import bound_check, bound_figure, class_covariance, gaussian_grid, move_along, spectrum
from ui.resources import ModelRef, friendly, page_inputs
from ui.sidebar import shared_sidebar
from ui.state import stop_page

sel = shared_sidebar("isda")
st.title("ISDA semantic directions")
st.markdown(
    "Implicit semantic data augmentation (ISDA, Wang et al. 2019) treats the **covariance of each class** "
    "as a list of meaningful ways its members vary (slant, stroke width, …) and augments a sample by moving "
    "it along them: z + δ with δ ~ N(0, λΣ_y). Here Σ_y is estimated online from the latents, batch by batch "
    "(eqs. 9–11), and its top eigen-directions become sliders. "
    "Try first: pick a class, move the first slider from −3 to +3 and watch one kind of variation appear."
)


ckpt, ds, z_all = page_inputs(sel)
look = show.style(ds)  # how this data's rows are drawn (images, or bars on a fixed axis)

from core.viz import spectrum_figure  # noqa: E402

names = list(ds.class_names)
y = ds.y.numpy()
d = z_all.shape[1]

# ----------------------------------------------------------------------------- covariance + spectrum
st.subheader("1 · Class covariance and its spectrum")
c1, c2 = st.columns([1, 1])
i0 = state.get("i0")
default_c = int(y[i0]) if isinstance(i0, int) and 0 <= i0 < len(y) else 0
cls_name = c1.selectbox("Class", names, index=default_c, key="w_isda_class")
c = names.index(cls_name)
batch = c2.select_slider("Streaming batch size (eqs. 9–11 update per batch)", [32, 64, 128, 256, 512, 1024],
                         value=256, key="w_isda_batch")
est = eigvals = None
with friendly("The covariance estimate"):
    est = class_covariance(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset, int(batch))
    if est["count"][c] >= 2:
        eigvals, eigvecs = spectrum(est["cov"][c])
if est is not None and est["count"][c] < 2:
    st.error(f"Class {cls_name} has fewer than two samples; its covariance is undefined. Pick another class.")
if eigvals is None:
    stop_page()
share = eigvals / max(eigvals.sum(), 1e-12)
st.caption(f"{int(est['count'][c])} samples of class {cls_name}, streamed in {est['batches']} batches of {batch}. "
           f"Latent size d = {d}; the top direction carries {share[0]:.0%} of the class variance.")
fig = spectrum_figure(eigvals, title=f"Eigen-spectrum of Σ for class {cls_name}")
fig.update_layout(height=300)
st.plotly_chart(fig, key="w_isda_spectrum")

# ----------------------------------------------------------------------------- live directions
members = np.flatnonzero(y == c)
start = members.tolist().index(i0) if isinstance(i0, int) and i0 in set(members.tolist()) else 0


COEFFS = "_ll_isda_coeffs"  # the direction coefficients, shared by the browser sliders and the server ones


def _coeffs(k: int) -> list[float]:
    return (list(st.session_state.get(COEFFS) or []) + [0.0] * k)[:k]


def _released(values: list[float]) -> None:
    """The browser sliders were let go: their values become the page's (and the server sliders')."""
    st.session_state[COEFFS] = [round(min(3.0, max(-3.0, v)) * 4) / 4 for v in values]


def _server_slider_moved(i: int, k: int) -> None:
    coeffs = _coeffs(k)
    coeffs[i] = float(st.session_state[f"w_isda_t{i}"])
    st.session_state[COEFFS] = coeffs


def _browser_sliders(idx: int, k: int, lam: float) -> tuple[bool, str | None]:
    """The direction sliders decoded in the browser: original and moved sample painted while dragging."""
    return latent_decoder.live_slider(
        "w_isda_browser", sel.ckpt, ckpt.sha256, path=latent_decoder.isda_path(z_all[idx], eigvals, eigvecs, k, lam),
        sliders=[{"label": f"v{i + 1}  (× √(λ·e{i + 1}))", "min": -3.0, "max": 3.0, "step": 0.25,
                  "value": v} for i, v in enumerate(_coeffs(k))],
        panels=[{"title": f"Original #{idx}", "kind": "image", "x": latent_decoder.images_b64(ds.x[idx].numpy())},
                {"title": "Moved", "kind": "decoded", "caption": " ".join(f"{{+{i}}}" for i in range(k))}],
        shape=tuple(ds.x.shape[1:]), on_release=_released, width=140, slider_columns=2,
        chart=look.get("chart"))


@st.fragment
def directions_panel() -> None:
    with friendly("Moving along the directions"):
        st.subheader("2 · Move a sample along the top directions")
        k = min(4, d)
        c1, c2, c3 = st.columns([2, 2, 1.5], vertical_alignment="bottom")
        pos = c1.number_input(f"Which {cls_name} (0–{len(members) - 1})", 0, len(members) - 1, start,
                              key=f"w_isda_member_{c}")
        lam = c2.slider("λ (strength: δ ~ N(0, λΣ))", 0.05, 5.0, 1.0, 0.05, key="w_isda_lam")
        on_server = latent_decoder.server_decode_toggle(c3)
        idx = int(members[int(pos)])
        live_col, grid_col = st.columns([2, 3])  # empty (no height) while the server decodes
        with live_col:
            live, why = (False, None) if on_server else _browser_sliders(idx, k, float(lam))
        if live:
            g = grid_col
        else:
            if why:
                st.caption(f"Decoding on the server: {why}.")
            cols = st.columns(k)
            for i, v in enumerate(_coeffs(k)):  # show the shared values (a browser release may have moved them)
                if st.session_state.get(f"w_isda_t{i}") != v:
                    st.session_state[f"w_isda_t{i}"] = v
            coeffs = [cols[i].slider(f"v{i + 1}  (× √(λ·e{i + 1}))", -3.0, 3.0, step=0.25, key=f"w_isda_t{i}",
                                     on_change=_server_slider_moved, args=(i, k)) for i in range(k)]
            x_new = move_along(sel.ckpt, z_all[idx], eigvals, eigvecs, coeffs, lam)
            a, b, g = st.columns([1, 1, 3])
            with a:
                st.markdown(f"**Original #{idx}**")
                show.one(ds.x[idx].numpy(), None, width=140, **look)
            with b:
                st.markdown("**Moved**")
                show.one(x_new[0], " ".join(f"{t:+.2g}" for t in coeffs), width=140, **look)
        with g:
            st.markdown(f"**16 draws from N(z, λΣ_{cls_name})**")
            seed = st.number_input("Seed of the draws", 0, 10_000, 0, key="w_isda_seed")
            grid = gaussian_grid(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset, idx, c, float(lam), 16, int(seed), int(batch))
            show.samples(grid, width=56, **look)
            from ui.export import download_samples_button
            download_samples_button(grid, names, method="isda-gaussian", dataset=sel.dataset, checkpoint=ckpt,
                                    key="w_isda_download", labels=[c] * len(grid), source_index=[idx] * len(grid),
                                    params={"lambda": float(lam), "class": cls_name, "n": len(grid), "seed": int(seed),
                                            "covariance_batch_size": int(batch)})


directions_panel()

# ----------------------------------------------------------------------------- the implicit loss
st.subheader("3 · Why ISDA needs no samples: the implicit loss")
st.markdown(
    "Training on infinitely many augmented features a ~ N(a_i, λΣ_y) would minimise the expected "
    "cross-entropy. ISDA never draws them: Jensen's inequality and the Gaussian moment-generating function "
    "give a closed-form **upper bound** that only adds a quadratic term to every wrong-class logit:"
)
st.latex(r"\overline{\mathcal L}_\infty = -\log \frac{e^{w_{y}^\top a + b_{y}}}"
         r"{\sum_j e^{w_j^\top a + b_j + \frac{\lambda}{2}(w_j - w_{y})^\top \Sigma_{y}(w_j - w_{y})}}")
st.markdown("Below, a logistic-regression classifier over the latents is scored both ways: the Monte-Carlo "
            "estimate over M explicit samples settles as M grows, and stays below the bound.")
lam_check = st.select_slider("λ for the check", [0.1, 0.25, 0.5, 1.0, 2.0, 5.0], value=0.5, key="w_isda_lamcheck")
with friendly("The bound check"):
    res = bound_check(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset, float(lam_check), batch_size=int(batch))
    df = pd.DataFrame(res["rows"]).set_index("M")
    df["ISDA bound"] = res["bound"]
    st.plotly_chart(bound_figure(res), key="w_isda_bound_chart")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Plain CE (λ = 0)", f"{res['plain_ce']:.3f}")
    last = res["rows"][-1]
    m2.metric(f"Monte-Carlo, M = {last['M']}", f"{last['mc_mean']:.3f}",
              help=f"± {1.96 * last['mc_stderr']:.3f}: the 95% confidence interval of this estimate")
    m3.metric("ISDA bound", f"{res['bound']:.3f}")
    m4.metric("Classifier accuracy", f"{res['accuracy']:.1%}")
    with st.expander("Numbers"):
        st.dataframe(df, width="stretch")

state.sync_url()
