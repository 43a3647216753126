"""Beta & dimensions (seed 002): beta-VAE latent maps at several beta side by side, and a
per-dimension traversal grid for any checkpoint."""

import numpy as np
import pandas as pd
import streamlit as st

from ui import catalog, show, state
from ui.components import latent_decoder
from ui.compute import reconstructions
from ui.dims import beta_summary, traversal, traversal_column
from ui.maps import quick_projection
from ui.resources import ModelRef, check_compatible, dataset, entries, friendly, page_inputs
from ui.sidebar import shared_sidebar

sel = shared_sidebar("beta_dims")
st.title("Beta & dimensions")
st.markdown(
    "A **beta-VAE** (Higgins et al. 2017; Bonn slides 2023, eq. 1) weighs the KL term of the VAE loss by β: "
    "loss = reconstruction error + β · KL(q(z|x) ‖ N(0, I)). A larger β pulls every code towards the prior — "
    "the map gets rounder and smoother, with fewer holes to fall into when sampling — but the codes carry "
    "less information, so reconstructions get blurrier. The slides also normalise β by the sizes involved, "
    "β_norm = β · d / N (d latent size, N input size); the models here use plain β. "
    "The **KL** (in nats) measures how much information the codes carry about each image.\n\n"
    "Try first: compare the maps from β = 0.5 to β = 16, then look at the traversal grid below — each row "
    "moves one latent dimension of one image from −3σ to +3σ and shows what that dimension controls."
)

from core.viz import image_grid, latent_scatter  # noqa: E402

# ----------------------------------------------------------------------------- beta maps
st.subheader("1 · The influence of β, side by side")
candidates = catalog.beta_vaes(entries(), sel.dataset, latent_dim=2)
if len(candidates) < 2:
    st.info(f"The β comparison needs at least two beta-VAEs with z = 2 trained on {sel.dataset}. "
            "The shipped ones are for mnist5k (`make beta-checkpoints`); or train some on **Train or load** "
            "with different β.")
else:
    by_name = {e.name: e.key for e in candidates}
    default = [by_name[n] for n in catalog.BETA_SET if n in by_name] or [e.key for e in candidates[:4]]
    labels = {e.key: f"β = {e.beta:g} · {e.name}" for e in candidates}
    picked = st.multiselect("β-VAEs to compare (2–4)", [e.key for e in candidates], default=default[:4],
                            max_selections=4, format_func=lambda k: labels.get(k, k), key="w_beta_models")
    order = {e.key: i for i, e in enumerate(candidates)}
    picked = sorted(picked, key=order.get)  # by increasing beta, left to right
    rows, maps = [], []
    for key in picked:
        with friendly(f"Checkpoint {key.split('/', 1)[1]}"):
            ck, _ = check_compatible(key, sel.dataset)
            ref = ModelRef(key, ck.sha256)
            maps.append((key, quick_projection(ref, sel.dataset, "raw"), ref))
    if maps:
        y, names = dataset(sel.dataset).y.numpy(), list(dataset(sel.dataset).class_names)
        lim = float(max(np.quantile(np.abs(xy), 0.995) for _, xy, _ in maps)) * 1.05
        cols = st.columns(len(maps))
        for col, (key, xy, ref) in zip(cols, maps):
            entry = catalog.find(candidates, key)
            with col, friendly(f"Checkpoint {entry.name}"):
                fig = latent_scatter(xy, y, names, marker_size=3, opacity=0.6, title=f"β = {entry.beta:g}")
                fig.update_layout(height=380, margin={"l": 5, "r": 5, "t": 40, "b": 5},  # same plot area in every column
                                  legend={"orientation": "h", "y": -0.12, "title": None, "font": {"size": 10}})
                fig.update_xaxes(range=[-lim, lim])
                fig.update_yaxes(range=[-lim, lim])
                st.plotly_chart(fig, width="stretch", key=f"w_beta_map_{key}", config={"displayModeBar": False})
                x, x_hat = reconstructions(ref, sel.dataset, 10)
                st.image(image_grid(np.concatenate([x, x_hat]), ncol=10), width="stretch",
                         caption="top: originals · bottom: reconstructions")
                m = beta_summary(ref, sel.dataset)
                a, b = st.columns(2)
                a.metric("KL (nats)", f"{m['kl']:.2f}", help="mean over the dataset of KL(q(z|x) ‖ N(0, I)), summed "
                                                             "over the latent dimensions")
                b.metric("recon MSE", f"{m['recon_mse']:.4f}", help="mean squared pixel error of decode(μ)")
                rows.append({"model": entry.name, "β": entry.beta, "KL weight": m["kl_weight"], "KL (nats)": m["kl"],
                             "KL per dim": ", ".join(f"{v:.2f}" for v in m["kl_per_dim"]),
                             "recon MSE": m["recon_mse"]})
        st.caption(f"Codes (μ) on the raw latent axes, all on the same window ±{lim:.1f}; colour = class. "
                   "The prior N(0, I) has 95% of its mass within a radius of 2.4.")
    if rows:
        table = pd.DataFrame(rows)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"KL (nats)": st.column_config.NumberColumn(format="%.3f"),
                                    "recon MSE": st.column_config.NumberColumn(format="%.4f")})
        kl, mse = table["KL (nats)"].tolist(), table["recon MSE"].tolist()
        falling = all(a > b for a, b in zip(kl, kl[1:]))
        st.caption("Higher β, lower KL: " + ("every step up in β lowered the KL here. " if falling else
                   "not for every pair here (do these models differ in other settings too?). ") +
                   f"Reconstruction error: {mse[0]:.4f} at β = {table['β'].iloc[0]:g}, {mse[-1]:.4f} at "
                   f"β = {table['β'].iloc[-1]:g} — information the codes no longer carry is information the decoder "
                   "cannot give back. (With z = 2 the two-number bottleneck limits reconstructions too, so small "
                   "steps in β may not show in the error.)")

# ----------------------------------------------------------------------------- traversal grid
st.subheader("2 · What each latent dimension does (traversal grid)")
st.markdown(
    "Rows: the latent dimensions of the sidebar's checkpoint, the most used first — by their **KL** (VAE: nats "
    "each dimension carries) or by the **variance** of the codes (any model). Columns: the chosen image's "
    "code with that one dimension moved by −3σ … +3σ, where σ is the spread of the data's codes in that "
    "dimension. The centre column is the image's own reconstruction. A row that does not change is a "
    "dimension the model does not use; a row that changes one thing (slant, width, class) is a "
    "*disentangled* dimension."
)
ckpt, ds, z = page_inputs(sel)
look = show.style(ds)  # how this data's rows are drawn (images, or bars on a fixed axis)
n, d = len(ds), z.shape[1]
is_vae = hasattr(ckpt.model, "encode_dist")
c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
i0 = c1.number_input("Sample (dataset index)", min_value=0, max_value=n - 1, step=1,
                     **state.bind_widget("i0", "w_beta_i0", lambda v: isinstance(v, int) and 0 <= v < n, 0))
state.put("i0", int(i0))
by_options = (["KL", "variance"] if is_vae else ["variance"])
by = c2.radio("Order dimensions by", by_options, horizontal=True, key=f"w_beta_by_{is_vae}",
              help="KL needs a VAE (a posterior q(z|x)); an AE/AAE is ordered by the variance of its codes.")
n_dims = c3.slider("Dimensions shown", 1, min(d, 16), min(d, 8), key=f"w_beta_ndims_{d}") if d > 1 else 1
n_steps = c4.select_slider("Columns", [5, 7, 9, 11], value=7, key="w_beta_steps")

g = None
with friendly("The traversal grid"):
    g = traversal(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset, int(i0), by.lower(), int(n_dims), int(n_steps))
    names = list(ds.class_names)
    left, right = st.columns([1, 4])
    with left:
        show.one(ds.x[int(i0)].numpy(), f"#{int(i0)} · class {names[int(ds.y[int(i0)])]}", width=112,
                 **look)
    with right:
        if ds.is_image:
            grid = g["images"]  # (R, C, *shape)
            st.image(image_grid(grid.reshape(-1, *grid.shape[2:]), ncol=grid.shape[1]), width=64 * grid.shape[1],
                     caption="columns: " + "  ".join(f"{t:+.1f}σ" for t in g["offsets"]))
        else:
            st.info("Tabular data: the grid's rows are shown as feature charts below.")
    score = "KL (nats)" if g["kind"] == "kl" else "code variance"
    rows = pd.DataFrame({"row": np.arange(1, len(g["dims"]) + 1), "latent dimension": g["dims"],
                         score: g["scores"], "σ (code std)": g["sigma"]})
    st.dataframe(rows, hide_index=True, width="stretch")
    if not ds.is_image:
        for r, dim in enumerate(g["dims"]):
            show.samples(g["images"][r], [f"dim {dim} {t:+.1f}σ" for t in g["offsets"]], **look)

# ----------------------------------------------------------------------------- live offset slider
OFFSET_LABEL = "Offset t, in σ of each row's dimension"


def _offset() -> float:
    """The offset (in sigma) shared by the browser's slider, the server's and the URL (?t=); a bad or
    out-of-range value from a hand-edited link reads as 0."""
    t = state.get("t")
    if isinstance(t, float | int) and -3.0 <= t <= 3.0:
        return float(t)
    state.put("t", None)  # drop a bad value, so the link is corrected too
    return 0.0


def _released(values: list[float]) -> None:
    """The browser's slider was let go: its value becomes the page's (and the server slider's)."""
    state.put("t", round(min(3.0, max(-3.0, values[0])) * 10) / 10)


def _server_slider_moved() -> None:
    state.put("t", float(st.session_state["w_beta_t"]))


def _browser_column(g: dict) -> tuple[bool, str | None]:
    """One decoded panel per row, each row's own path z0 + t * sigma_d e_d, all driven by one slider."""
    return latent_decoder.live_slider(
        "w_beta_browser", sel.ckpt, ckpt.sha256,
        path={"kind": "directions", "base": g["z0"], "dirs": g["directions"][:1]},
        sliders=[{"label": OFFSET_LABEL, "min": -3.0, "max": 3.0, "step": 0.1, "value": _offset()}],
        panels=[{"title": f"dim {dim}", "kind": "decoded", "caption": "{+0}σ",
                 "path": {"kind": "directions", "base": g["z0"], "dirs": g["directions"][r:r + 1]}}
                for r, dim in enumerate(g["dims"])],
        shape=tuple(ds.x.shape[1:]), on_release=_released, width=72, chart=look.get("chart"))


@st.fragment
def offset_panel(g: dict) -> None:
    with friendly("The offset slider"):
        head, switch = st.columns([3, 1.5], vertical_alignment="bottom")
        head.markdown("**Between the columns: one offset for every row** — drag t and watch which rows change.")
        on_server = latent_decoder.server_decode_toggle(switch)
        live, why = (False, None) if on_server else _browser_column(g)
        if live:
            st.caption("Your browser decodes every step of the drag; the page keeps the value when you let go.")
            state.sync_url()  # a fragment rerun does not reach the page's own sync_url()
            return
        if st.session_state.get("w_beta_t") != _offset():  # show the shared value (a browser release may have moved it)
            st.session_state["w_beta_t"] = _offset()
        t = st.slider(OFFSET_LABEL, -3.0, 3.0, step=0.1, key="w_beta_t", on_change=_server_slider_moved)
        if why:
            st.caption(f"Decoding on the server: {why}.")
        column = traversal_column(ModelRef(sel.ckpt, ckpt.sha256), g["z0"], g["directions"], float(t))
        show.samples(column, [f"dim {dim} {t:+.1f}σ" for dim in g["dims"]], width=72, **look)
        state.sync_url()


if g is not None:
    offset_panel(g)

state.sync_url()
