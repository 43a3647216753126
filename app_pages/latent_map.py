"""Latent map (PCA / UMAP / raw axes) with selection -> gallery, and the hole effect side by side."""

import time

import pandas as pd
import streamlit as st

from ui import catalog, probe_ops, show, state
from ui.components import latent_probe
from ui.maps import hole_job, quick_projection, sampler_table, umap_job, umap_stage
from ui.resources import ModelRef, UiError, check_compatible, entries, friendly, page_inputs
from ui.sidebar import shared_sidebar
from ui.state import stop_page

sel = shared_sidebar("latent_map")
st.title("Latent map & holes")
st.markdown(
    "Each dot is one training example (an image, or a row of a table), placed by its latent code (projected to 2-d) and coloured by class. "
    "Liu et al. (2018) argue that a plain autoencoder leaves **holes** — empty regions between classes that "
    "decode to garbage — and that an adversarial autoencoder with a **uniform prior** fills them, which is "
    "what makes latent interpolation a good augmentation. "
    "Try first: box-select a cluster to see its images, then compare the four z = 2 models at the bottom."
)


ckpt, ds, z = page_inputs(sel)
look = show.style(ds)  # how this data's rows are drawn (images, or bars on a fixed axis)
ref = ModelRef(sel.ckpt, ckpt.sha256)

from core.viz import density_figure, latent_scatter, selection_to_indices  # noqa: E402

names = list(ds.class_names)
d = z.shape[1]
is_table = not ds.is_image  # a decoded row is a bar chart over the features (chart), not an image
chart = look.get("chart")
GRID_IS_FOR_IMAGES = ("The decoded grid is for images; tables show one decoded row under the pointer, as a bar chart "
                      "over the features (hover a bar for its name and value), with its hole depth beside it.")

# ----------------------------------------------------------------------------- the map
st.subheader("1 · The encoded dataset")
options = (["raw axes"] if d == 2 else []) + ["PCA", "UMAP"]
method = st.radio("Projection", options, horizontal=True, key=f"w_map_method_{d == 2}",
                  help="PCA is instant. UMAP shows neighbourhoods better; it runs in a worker process (a few "
                       "seconds, the first fit in a fresh worker longer) and is cached on disk afterwards.")
umap = umap_job(ref, sel.dataset) if method == "UMAP" else None
umap_ready = umap is not None and umap.status == "done"


def _poll_umap() -> None:
    job = umap                         # the handle of the page's last full run
    if job.done:
        st.rerun(scope="app")
    place = job.queue_position
    where = (f"waiting for a free worker, place {place} in the queue" if place else
             f"in a worker process, {time.time() - (job.started_at or time.time()):.0f} s{umap_stage(job.progress)}")
    st.info(f"Computing the UMAP in the background ({where})… the PCA map is shown meanwhile.",
            icon=":material/hourglass_top:")


if umap is not None and not umap.done:
    st.fragment(_poll_umap, run_every=1.0)()
if umap is not None and umap.error_class:
    st.error(f"UMAP failed: {umap.error_text.splitlines()[0]} — showing PCA instead.")


def shown_map():
    """(xy (N, 2), the projection shown as a word, and as core.projection names it)."""
    if umap_ready:
        return umap.result()["xy"], "UMAP", "umap"
    shown = "raw axes" if method == "raw axes" else "PCA"
    key = "raw" if shown == "raw axes" else "pca"
    return quick_projection(ref, sel.dataset, key), shown, key


@st.fragment
def map_and_gallery() -> None:
    with friendly("The map"):
        xy, shown, _ = shown_map()
        fig = latent_scatter(xy, ds.y.numpy(), names, list(range(len(xy))))
        fig.update_layout(title=f"{sel.entry.name if sel.entry else sel.ckpt} · {shown} · {len(xy):,} points", height=520,
                          margin={"t": 60})
        event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"),
                                key=f"w_map_{sel.ckpt}_{shown}_{st.session_state.get('_ll_map_nonce', 0)}",
                                width="stretch")
        chosen = selection_to_indices(event)
        if chosen:
            st.session_state["ll_selection"] = [int(i) for i in chosen]
        chosen = [i for i in st.session_state.get("ll_selection") or [] if 0 <= i < len(ds)]
        st.markdown(f"**Selection** — {len(chosen)} point(s)" + (" (showing the first 48)" if len(chosen) > 48 else ""))
        if not chosen:
            st.caption("Use the box or lasso tool (top right of the chart), or click a point.")
            return
        idx = chosen[:48]
        y = ds.y.numpy()
        show.samples(ds.x[idx].numpy(), [f"#{i} · {names[y[i]]}" for i in idx], width=64, **look)
        counts = pd.Series([names[y[i]] for i in chosen]).value_counts()
        st.caption("Classes in the selection: " + ", ".join(f"{k} × {v}" for k, v in counts.items()))
        c1, c2 = st.columns(2)
        if len(chosen) >= 2 and c1.button("Interpolate between the first two", key="w_map_to_interp"):
            state.put("i0", int(chosen[0]))
            state.put("i1", int(chosen[1]))
            state.sync_url()
            st.switch_page("app_pages/interpolation.py")
        if c2.button("Clear selection", key="w_map_clear"):
            st.session_state["ll_selection"] = []
            st.session_state["_ll_map_nonce"] = st.session_state.get("_ll_map_nonce", 0) + 1  # a fresh chart
            st.rerun()


map_and_gallery()

# ----------------------------------------------------------------------------- probe anywhere
st.subheader("Probe the space between the codes")
st.markdown(
    "Move the pointer over this map: your browser turns the point into a latent code and decodes it at once "
    "(no server round trip). **Raw axes**: the point *is* the code. **PCA**: the code on the plane through the "
    "codes' mean spanned by the two components (exact on that plane; the other directions stay at the mean). "
    "**UMAP**: the codes of the three data points of the triangle around the pointer, mixed by its barycentric "
    "weights; beyond the data's outline there is no triangle, and the probe says *outside the data* instead of "
    "guessing. Wheel: zoom, drag: pan, click: pin the probe. The **decoded manifold** tiles the window with "
    "decoded images; each tile's border is its hole depth (distance to the nearest training code over the "
    "typical neighbour distance): green up to 1 (as close as a typical code to its neighbour), orange sparser, "
    "**red: a hole** (farther than 95 % of the codes are from their nearest neighbour, the hole fraction's "
    "threshold).")


def _grid_choice(label: str, name: str, wkey: str) -> int | None:
    """A row of grid sizes ("off", 8 .. 24) bound to shared state `name` (in the URL) -> n or None."""
    options = ["off", *map(str, state.GRID_SIZES)]
    current = str(state.get(name)) if state.get(name) else "off"
    choice = st.radio(label, options, index=options.index(current), horizontal=True, key=wkey)
    state.put(name, int(choice) if choice != "off" else (None if state.SHARED[name][1] is None else 0))
    return state.get(name) or None


def _pinned(pin: dict) -> None:
    """A click on the map: the probe joins the pinned list (the URL's `pins`), the oldest leaves beyond 8."""
    _, _, key = shown_map()
    pins = list(state.get("pins") or [])
    pins.append({"m": key, "xy": tuple(float(v) for v in pin["xy"]), "z": tuple(float(v) for v in pin["z"])})
    state.put("pins", pins[-probe_ops.MAX_PINS:])


@st.fragment
def probe_panel() -> None:
    with friendly("The probe"):
        xy, shown, key = shown_map()
        pins, dropped = probe_ops.valid_pins(state.get("pins"), d)
        state.put("pins", pins or None)
        if dropped:
            st.warning(dropped)
        if is_table:
            st.caption(GRID_IS_FOR_IMAGES)
        else:
            _grid_choice("Decoded manifold (tiles per side)", "grid", "w_probe_grid")
        why = latent_probe.probe_maps(
            "w_probe", [{"title": f"{sel.entry.name if sel.entry else sel.ckpt} · {shown}", "ckpt_key": sel.ckpt,
                         "sha": ckpt.sha256, "map_key": probe_ops.map_key(ref, sel.dataset, key, xy),
                         "map": lambda: probe_ops.map_payload(ref, sel.dataset, key, xy),
                         "pins": [p for p in pins if p["m"] == key]}],
            shape=tuple(ds.x.shape[1:]), grid=state.get("grid") or 0, pinnable=True, on_pin=_pinned,
            view=state.get("view"), on_view=lambda v: state.put("view", v), chart=chart)
        if why:
            st.info(f"The probe needs the browser decoder: {why}.")
        if pins:
            rows = probe_ops.pin_rows(ref, sel.dataset, pins)
            table = pd.DataFrame(rows).set_index("pin")
            st.dataframe(table.style.format({"distance": "{:.3f}", "hole depth": "{:.2f}"}),
                         width="stretch")
            other = sorted({p["m"] for p in pins} - {key})
            if other:
                st.caption(f"Pins made on another projection ({', '.join(other)}) are listed, not drawn on this map.")
            c1, c2, c3, c4 = st.columns([1.2, 2, 2, 1.5], vertical_alignment="bottom")
            k = c1.selectbox("Pin", list(range(1, len(pins) + 1)), key="w_probe_pin")
            for col, end, label in ((c2, "za", "A"), (c3, "zb", "B")):
                if col.button(f"Use as interpolation endpoint {label}", key=f"w_probe_to_{end}", width="stretch"):
                    state.put(end, tuple(pins[k - 1]["z"]))
                    state.sync_url()
                    st.switch_page("app_pages/interpolation.py")
            c4.button("Remove pin", key="w_probe_remove", width="stretch", on_click=lambda: state.put(
                "pins", [p for i, p in enumerate(pins) if i != k - 1] or None))
        else:
            st.caption("Click the map to pin a probe: pinned probes are listed here, kept in the link, and can be "
                       "sent to the Interpolation page as an endpoint.")
        state.sync_url()


probe_panel()

# ----------------------------------------------------------------------------- hole effect
st.subheader("2 · The hole effect, side by side")
st.markdown(
    "The same dataset encoded by two to five models. A **density** view shows where the codes lie; empty "
    "patches inside the cloud are holes. The table measures it:\n"
    "- **hole fraction (box / prior)** — share of random points (in the codes' bounding box, or drawn from the "
    "prior) that are farther from every training code than 95% of training codes are from their nearest "
    "neighbour. ≈ 0.05 means no holes; near 1 means mostly holes.\n"
    "- **hole depth (box / prior)** — median distance from a random point to the nearest training code, in "
    "units of the codes' own nearest-neighbour distance: ≈ 1 = filled, much larger = deep holes.\n"
    "- **midpoint confidence** — how sure a classifier trained on real images is about decoded midpoints "
    "between two classes (compare with **recon confidence** on plain reconstructions): higher = more realistic.\n"
    "- **re-encode error** — ‖E(D(z)) − z‖ along interpolation paths, relative to the path length: "
    "low = the path stays on the learned manifold."
)
same = [e for e in entries() if e.dataset == sel.dataset]
by_name = {e.name: e.key for e in same}
default = [by_name[n] for n in catalog.HOLE_SET if n in by_name] or [e.key for e in same[:4]]
labels = {e.key: e.label for e in same}
picked = st.multiselect("Models to compare (2–5)", [e.key for e in same], default=default[:5], max_selections=5,
                        format_func=lambda k: labels.get(k, k), key="w_holes_models")
if len(picked) < 2:
    st.info("Pick at least two checkpoints to compare.")
    stop_page()

rows, cols, pending, hole_jobs = [], st.columns(len(picked)), [], []
all_2d = all(next(e for e in same if e.key == k).latent_dim == 2 for k in picked)
view = "raw" if all_2d else "pca"
drawn = []  # (column, name, model reference): every density first, then the hole jobs, so that the encodings the
# densities wait for (urgent worker jobs) never queue behind this page's own hole metrics
for col, key in zip(cols, picked):
    with col:
        try:
            ck, _ = check_compatible(key, sel.dataset)
            key_ref = ModelRef(key, ck.sha256)
            xy = quick_projection(key_ref, sel.dataset, view)
        except (UiError, ValueError) as e:
            st.error(str(e))
            continue
        name = key.split("/", 1)[1]
        fig = density_figure(xy, title=name)
        fig.update_traces(showscale=False)
        fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title_font_size=13)
        st.plotly_chart(fig, width="stretch", key=f"w_density_{key}", config={"displayModeBar": False})
        drawn.append((col, name, key_ref))
for col, name, key_ref in drawn:
    job = hole_job(key_ref, sel.dataset)
    hole_jobs.append(job)
    if job.status == "done":
        rows.append({"model": name, **{k: v for k, v in job.result().items() if k != "seconds"}})
    elif job.error_class:
        col.error(f"Hole metrics failed for {name}: {job.error_text.splitlines()[0]}")
    else:
        pending.append(name)
st.caption(f"Density of the codes on the {'raw latent axes' if all_2d else 'first two principal components'}.")


@st.fragment
def compared_manifolds() -> None:
    """Each model's decoded manifold side by side on the same relative window; one pointer probes them all."""
    with friendly("The decoded manifolds"):
        if is_table:
            st.markdown("**Decoded rows, one pointer** — each model's map over the same *relative* window (wheel "
                        "and drag move all of them); the pointer over any map decodes every model at the same "
                        "relative position, each row a bar chart with its hole depth.")
            st.caption(GRID_IS_FOR_IMAGES)
            grid = 0
        else:
            st.markdown("**Decoded manifolds, one pointer** — each model's map tiled with decoded images over the "
                        "same *relative* window (wheel and drag move all of them); the pointer over any map probes "
                        "every model at the same relative position. Tile border = hole depth (green: filled, red: "
                        "a hole, as above).")
            grid = _grid_choice("Tiles per side", "hgrid", "w_holes_grid")
        shown_models = drawn[:4]
        if len(drawn) > 4:
            st.caption(f"The first four of the {len(drawn)} models are drawn.")
        size = {2: 380, 3: 260}.get(len(shown_models), 195)
        why = latent_probe.probe_maps(
            "w_holes_probe",
            [{"title": name, "ckpt_key": r.key, "sha": r.sha256,
              "map_key": probe_ops.map_key(r, sel.dataset, view, quick_projection(r, sel.dataset, view)),
              "map": lambda r=r: probe_ops.map_payload(r, sel.dataset, view, quick_projection(r, sel.dataset, view))}
             for _, name, r in shown_models],
            shape=tuple(ds.x.shape[1:]), grid=grid or 0, size=size, probe_size=84, chart=chart)
        if why:
            st.info(f"The side-by-side manifolds need the browser decoder: {why}.")
        state.sync_url()


if len(drawn) >= 2:
    compared_manifolds()


def _poll_holes() -> None:
    """Polls the handles of the page's last full run (looking them up again cost ~50 ms a second)."""
    if all(j.done for j in hole_jobs):
        st.rerun(scope="app")
    done = sum(j.done for j in hole_jobs)
    places = [j.queue_position for j in hole_jobs if j.queue_position]
    waiting = f", {len(places)} waiting for a worker" if places else ""
    st.progress(done / len(hole_jobs), text=f"Computing hole metrics in worker processes: {done}/{len(hole_jobs)} "
                                            f"models{waiting} (the first run also trains a small real-data "
                                            "classifier)…")


if pending:
    st.fragment(_poll_holes, run_every=1.0)()
COLUMNS = {"hole_fraction_box": "hole fraction (box)", "hole_fraction_prior": "hole fraction (prior)",
           "hole_depth_box": "hole depth (box)", "hole_depth_prior": "hole depth (prior)",
           "midpoint_confidence": "midpoint confidence", "recon_confidence": "recon confidence",
           "reencode_error": "re-encode error"}
if rows:
    table = pd.DataFrame(rows).set_index("model")
    table = table[[c for c in COLUMNS if c in table] + [c for c in table if c not in COLUMNS]]
    st.dataframe(table.rename(columns=COLUMNS).style.format("{:.3f}"), width="stretch")
    if "hole_fraction_box" in table and "midpoint_confidence" in table:
        st.caption(f"Fewest holes in its bounding box: **{table['hole_fraction_box'].idxmin()}**; most realistic "
                   f"midpoints: **{table['midpoint_confidence'].idxmax()}**. Liu et al. expect the uniform-prior "
                   "AAE to win both — check whether these checkpoints bear that out.")

shipped = tuple(k.split("/", 1)[1] for k in picked if k.startswith("shipped/"))
measured = sampler_table(shipped) if sel.dataset == "mnist5k" and shipped else None
if measured:
    with st.expander("Samplers against the holes (measured offline for the shipped checkpoints)"):
        st.markdown(
            "2,000 samples per row from each sampler, decoded and compared with the official MNIST test set (the "
            "models were trained on all of mnist5k); mean [95 % interval over 5 sampling seeds]. **prior**: the "
            "model's prior (the plain AE has none: a Gaussian fitted to its codes); **ex-post**: a Gaussian mixture "
            "fitted to the codes after training (Ghosh et al. 2020); **knn-interpolate**: towards a same-class "
            "neighbour; *held-out-real* / *held-out-recon*: other test images and their reconstructions, the "
            "references. FD is measured in the features of a small CNN trained on mnist5k — not Inception-FID, "
            "not comparable to published FIDs. Records: `docs/records/samplers.csv` (`python -m core samplers`).")
        st.markdown(measured)

state.sync_url()
