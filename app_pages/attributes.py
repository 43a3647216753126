"""Attribute vectors (Latent Space Cartography): A − B from two classes or two map selections, the custom
projection along it, how well it separates A from B (with a bootstrap), t·v applied to a sample and decoded
in the browser, and named vectors kept, exported and loaded as JSON."""

import pandas as pd
import streamlit as st

from ui import attribute_ops as ops
from ui import show, state
from ui.components import latent_decoder
from ui.resources import ModelRef, friendly, page_inputs
from ui.sidebar import shared_sidebar

sel = shared_sidebar("attributes")
st.title("Attribute vectors")
st.markdown(
    "An **attribute vector** is the difference between the mean codes of two groups: v = mean(z_A) − mean(z_B) "
    "(Latent Space Cartography, Liu, Jun, Li & Heer 2019). If the model has organised its space well, v points "
    "from 'B-like' to 'A-like', and adding t·v to any code moves its image towards A — an **analogy** "
    "(sample + (A − B)). Try first: keep classes 7 and 1, take a 1 in section 3 and drag t to 1 — does it become a 7? "
    "Then try a sample of another class."
)

ckpt, ds, z = page_inputs(sel)
look = show.style(ds)  # how this data's rows are drawn (images, or bars on a fixed axis)
ref = ModelRef(sel.ckpt, ckpt.sha256)

from core.attributes import AttributeVector, vectors_to_json  # noqa: E402
from core.viz import latent_scatter  # noqa: E402

names = list(ds.class_names)
n, d = z.shape
model_label = f"{sel.ckpt}@{ckpt.sha256[:12]}"

# ----------------------------------------------------------------------------- the URL, once per session
SOURCES = ["Two classes", "Map selections", "A saved vector"]
seed, bad = ops.url_once(len(names), d)
if "classes" in seed:
    st.session_state["w_attr_source"] = SOURCES[0]
    st.session_state["w_attr_a"], st.session_state["w_attr_b"] = (names[i] for i in seed["classes"])
elif "vector" in seed:
    vec = AttributeVector(seed["name"], tuple(seed["vector"]), model=model_label)  # the link names its ckpt too
    ops.keep_vector(vec)
    st.session_state["w_attr_source"] = SOURCES[2]
    st.session_state["w_attr_saved"] = vec.name
if "t" in seed:
    st.session_state["_ll_attr_t"] = seed["t"]
if bad:
    st.warning("Ignored link parameter(s): " + "; ".join(bad) + ".")

# ----------------------------------------------------------------------------- 4 · keep, export, load

def kept_section() -> None:
    """Keep the current vector; list, forget, download and load kept ones (drawn without a current vector too:
    loading a file is one way to get one)."""
    st.subheader("4 · Kept vectors")
    if groups is not None and current is not None:
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        keep_name = c1.text_input("Name", value=current.name, key="w_attr_keep_name")
        if c2.button("Keep this vector", key="w_attr_keep", disabled=not keep_name.strip()):
            replaced = ops.keep_vector(AttributeVector(keep_name.strip(), current.vector, current.a_label,
                                                       current.b_label, current.model, current.stats))
            st.toast(f"{'Replaced' if replaced else 'Kept'} “{keep_name.strip()}”.")
    kept = ops.saved_vectors()
    if kept:
        st.dataframe(pd.DataFrame([{"name": v.name, "A": v.a_label, "B": v.b_label, "d": v.dim,
                                    "|v|": v.norm, "AUC": v.stats.get("auc"),
                                    "AUC low": v.stats.get("auc_low"), "AUC high": v.stats.get("auc_high"),
                                    "cosine": v.stats.get("cosine_mean"), "model": v.model} for v in kept]),
                     hide_index=True, width="stretch", key="w_attr_table")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        c1.download_button("Download all as JSON", vectors_to_json(kept), "attribute-vectors.json", "application/json",
                           key="w_attr_download")
        gone = c2.selectbox("Forget", [v.name for v in kept], key="w_attr_forget_name")
        if c3.button("Forget", key="w_attr_forget"):
            ops.forget_vector(gone)
            st.rerun()
    else:
        st.caption("None kept yet in this session.")

    upload = st.file_uploader("Load vectors (a JSON file downloaded here)", type=["json"], key="w_attr_upload")
    if upload is not None:
        done = st.session_state.get("_ll_attr_loaded") or {}
        if done.get("file_id") != upload.file_id:  # a rerun with the same file in the box loads nothing again
            try:
                added = ops.load_vectors(upload.getvalue(), d)
                done = {"file_id": upload.file_id, "ok": f"Loaded {len(added)} vector(s): {', '.join(added)}."}
            except ValueError as e:
                done = {"file_id": upload.file_id, "error": f"Could not load {upload.name!r}: {e}"}
            st.session_state["_ll_attr_loaded"] = done
            if "ok" in done:
                st.rerun()
        if "error" in done:
            st.error(done["error"])
        else:
            st.success(done["ok"])


def finish() -> None:
    """Draw sections 4 and 5, write the URL and end the run (also where no vector can be explored yet)."""
    kept_section()
    ops.samplers_panel(ref, sel.dataset, ckpt.meta.get("dataset"))
    state.sync_url()
    st.stop()


# ----------------------------------------------------------------------------- 1 · define A and B
st.subheader("1 · Define A and B")
source = st.radio("Groups from", SOURCES, horizontal=True, key="w_attr_source", label_visibility="collapsed")
# A class or group picker keeps its choice in session state (a link may have set it): no index= beside it.
A_DEFAULT, B_DEFAULT = (7, 1) if len(names) > 7 else (min(1, len(names) - 1), 0)
for wkey, value in (("w_attr_a", names[A_DEFAULT]), ("w_attr_b", names[B_DEFAULT])):
    if st.session_state.get(wkey) not in names:
        st.session_state[wkey] = value
groups = current = None  # Groups (A and B known) / the AttributeVector explored below
url_classes = None
if source == "Two classes":
    c1, c2 = st.columns(2)
    ca = c1.selectbox("Class A", names, key="w_attr_a")
    cb = c2.selectbox("Class B", names, key="w_attr_b")
    if ca == cb:
        st.error("A and B are the same class: pick two different classes.")
        finish()
    url_classes = (names.index(ca), names.index(cb))
    groups = ops.class_groups(sel.dataset, *url_classes)
elif source == "Map selections":
    selection = [i for i in st.session_state.get("ll_selection") or [] if 0 <= i < n]
    saved = ops.saved_groups(sel.dataset)
    c1, c2, c3 = st.columns([3, 2, 1.2], vertical_alignment="bottom")
    c1.caption(f"{len(selection)} point(s) selected now on **Latent map & holes**; save each selection under a "
               "name, then pick two saved groups as A and B.")
    group_name = c2.text_input("Name of the group", value=f"selection {len(saved) + 1}", key="w_attr_group_name")
    if c3.button("Save selection", key="w_attr_group_save", disabled=not selection or not group_name.strip()):
        ops.save_group(sel.dataset, group_name.strip(), selection)
        st.rerun()
    saved = ops.saved_groups(sel.dataset)
    if len(saved) < 2:
        st.info(f"{len(saved)} group(s) saved: select points on **Latent map & holes**, come back and save them; "
                "two groups are needed.")
        finish()
    c1, c2 = st.columns(2)
    ga = c1.selectbox("Group A", list(saved), index=0, key="w_attr_ga",
                      format_func=lambda g: f"{g} ({len(saved[g])} points)")
    gb = c2.selectbox("Group B", list(saved), index=1, key="w_attr_gb",
                      format_func=lambda g: f"{g} ({len(saved[g])} points)")
    both = set(saved[ga]) & set(saved[gb])
    if ga == gb or both:
        st.error(f"A and B share {len(both) or len(saved[ga])} point(s): pick two groups that do not overlap.")
        finish()
    groups = ops.Groups("indices", tuple(saved[ga]), tuple(saved[gb]), ga, gb)
else:
    usable = [v for v in ops.saved_vectors() if v.dim == d]
    others = len(ops.saved_vectors()) - len(usable)
    if others:
        st.caption(f"{others} kept vector(s) belong to a latent space of another size and are not offered here.")
    if not usable:
        st.info("No vector of this latent size is kept yet: define one from two classes or selections and keep it "
                "(section 4), or load a JSON file there.")
    else:
        pick = st.selectbox("Vector", [v.name for v in usable], key="w_attr_saved")
        current = next(v for v in usable if v.name == pick)
        st.caption(f"A = {current.a_label}, B = {current.b_label}; made on `{current.model or 'unknown model'}`.")
        if current.model and current.model != model_label:
            st.warning(f"This vector was made on `{current.model}`, the page shows `{model_label}`: a vector means "
                       "something only in the latent space it was made in.")

summary = job = None
job_refused = None  # why the bootstrap could not be queued (QueueFull: every worker slot taken)
if groups is not None:
    with friendly("The attribute vector"):
        summary = ops.summary(ref, sel.dataset, groups)
    if summary is None:
        finish()
    try:
        job = ops.bootstrap_job(ref, sel.dataset, groups)
    except ValueError as e:
        job_refused = str(e)
    current = AttributeVector(groups.name, tuple(summary["v"]), groups.a_label, groups.b_label, model_label,
                              job.result() if job is not None and job.status == "done" else {"auc": summary["auc"]})
if current is None:
    ops.write_url()
    finish()
st.session_state["_ll_attr_current"] = current

# ----------------------------------------------------------------------------- 2 · separation + projection
st.subheader("2 · How well v separates A from B")
if summary is not None:
    if job is None:
        stats = None
        st.warning(f"The bootstrap intervals could not start ({job_refused}); the page asks again on its next run.")
    elif job.status == "done":
        stats = job.result()
    elif job.error_class:
        stats = None
        st.error(f"The bootstrap failed: {job.error_text.splitlines()[0]}")
    else:
        stats = None

        def _poll() -> None:
            if job.done:
                st.rerun(scope="app")
            st.info(f"Redrawing A and B {ops.N_BOOT} times in a worker process for the intervals…",
                    icon=":material/hourglass_top:")

        st.fragment(_poll, run_every=1.0)()
    m1, m2, m3 = st.columns(3)
    m1.metric("Separation along v (AUC)", f"{summary['auc']:.3f}",
              help="The share of (A, B) pairs in which the A code lies farther along v than the B code. "
                   "1 = every A beyond every B; 0.5 = v does not separate them.")
    m2.metric("AUC, 95 % bootstrap interval", f"{stats['auc_low']:.3f} – {stats['auc_high']:.3f}" if stats else "…")
    m3.metric("Direction stability (cosine)", f"{stats['cosine_mean']:.3f}" if stats else "…",
              help="The mean cosine between v and the vectors of redrawn A and B groups (1 = the same direction "
                   "whichever codes are drawn).")
    words = (f"A ({groups.a_label}, {summary['n_a']} codes) and B ({groups.b_label}, {summary['n_b']} codes) lie "
             f"{summary['norm']:.2f} apart (|v|). Along v, an A code lies beyond a B code in "
             f"**{summary['auc']:.1%}** of all (A, B) pairs.")
    if stats:
        stable = "stable" if stats["cosine_low"] > 0.9 else "not stable" if stats["cosine_low"] < 0.7 else "fairly stable"
        words += (f" Redrawing both groups with replacement {stats['n_boot']} times, that share stays between "
                  f"{stats['auc_low']:.1%} and {stats['auc_high']:.1%} (95 % of the redraws), and the redrawn "
                  f"vectors point the same way as v (cosine {stats['cosine_mean']:.3f}, 95 % from "
                  f"{stats['cosine_low']:.3f} to {stats['cosine_high']:.3f}): the direction is **{stable}**.")
    st.markdown(words)
else:
    kept = current.stats or {}
    if "auc_low" in kept:
        st.markdown(f"When it was made: AUC {kept['auc']:.3f} (95 % bootstrap interval {kept['auc_low']:.3f} – "
                    f"{kept['auc_high']:.3f}), direction stability cosine {kept['cosine_mean']:.3f} "
                    f"({kept['cosine_low']:.3f} – {kept['cosine_high']:.3f}), on `{current.model}`.")
    else:
        st.markdown("This vector came without its groups, so its separation cannot be measured here; "
                    "the projection below still shows where every code lies along it.")

projection_box = st.container()  # drawn once the sample of section 3 is known (it is marked on the map)


def projection_figure(idx: int) -> None:
    """Every code along v against the residual's widest direction; the sample and where t = 1 takes it."""
    with friendly("The custom projection"):
        xy = ops.projection(ref, sel.dataset, current.vector)
        fig = latent_scatter(xy, ds.y.numpy(), names, marker_size=3,
                             title=f"Every code along v ({current.name}) against the rest's widest direction")
        fig.update_layout(height=480, margin={"t": 70}, dragmode="zoom",
                          xaxis_title="z · v / |v|   (along the attribute)",
                          yaxis_title="first principal direction of the residual")
        if summary is not None:
            for x, label in ((summary["x_a"], "mean of A"), (summary["x_b"], "mean of B")):
                fig.add_vline(x=x, line_dash="dash", line_color="#444", annotation_text=label)
        x0, y0 = (float(c) for c in xy[idx])
        fig.add_annotation(x=x0 + current.norm, y=y0, ax=x0, ay=y0, axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowwidth=2, arrowcolor="#000", text="")
        fig.add_annotation(x=x0, y=y0, text=f"#{idx}", showarrow=False, xanchor="right", xshift=-4,
                           font={"color": "#000"})
        fig.add_annotation(x=x0 + current.norm, y=y0, text="t = 1", showarrow=False, xanchor="left", xshift=6,
                           font={"color": "#000"})
        st.plotly_chart(fig, key=f"w_attr_projection_{ref.sha256[:8]}", width="stretch")
        st.caption(f"Moving a code by t·v moves its dot t·|v| = t × {current.norm:.2f} to the right and leaves its "
                   f"height unchanged; the arrow shows where t = 1 takes sample #{idx} (section 3).")


# ----------------------------------------------------------------------------- 3 · t·v on a sample
T_LABEL = "t   (z + t·v; t = 1 is the analogy sample + (A − B))"


def _t() -> float:
    t = st.session_state.get("_ll_attr_t", 1.0)
    return float(t) if isinstance(t, float | int) and ops.T_RANGE[0] <= t <= ops.T_RANGE[1] else 1.0


def _released(values: list[float]) -> None:
    st.session_state["_ll_attr_t"] = round(min(ops.T_RANGE[1], max(ops.T_RANGE[0], values[0])) * 20) / 20


def _server_moved() -> None:
    st.session_state["_ll_attr_t"] = float(st.session_state["w_attr_t"])


@st.fragment
def move_panel(idx: int, on_server: bool) -> None:
    """The t slider and its decodes; a fragment, so a server-slider move reruns only this part."""
    with friendly("Moving the sample"):
        vectors = [current.vector]
        if groups is not None:
            vectors += [tuple(r) for r in ops.draws(ref, sel.dataset, groups)]
        titles = ["z + t·v"] + [f"bootstrap draw {k + 1}" for k in range(len(vectors) - 1)]
        live, why = False, None
        if not on_server:
            live, why = latent_decoder.live_slider(
                "w_attr_browser", sel.ckpt, ckpt.sha256,
                path={"kind": "directions", "base": z[idx], "dirs": [vectors[0]]},
                sliders=[{"label": T_LABEL, "min": ops.T_RANGE[0], "max": ops.T_RANGE[1], "step": 0.05,
                          "value": _t()}],
                panels=[{"title": f"Original #{idx}", "kind": "image", "x": latent_decoder.images_b64(ds.x[idx].numpy())}]
                + [{"title": title, "kind": "decoded", "caption": "t = {0}",
                    "path": {"kind": "directions", "base": z[idx], "dirs": [vec]}}
                   for title, vec in zip(titles, vectors)],
                shape=tuple(ds.x.shape[1:]), on_release=_released, width=112,
                chart=look.get("chart"))
        t = _t()
        if not live:
            if why:
                st.caption(f"Decoding on the server: {why}.")
            if st.session_state.get("w_attr_t") != t:
                st.session_state["w_attr_t"] = t
            t = float(st.slider(T_LABEL, ops.T_RANGE[0], ops.T_RANGE[1], step=0.05, key="w_attr_t",
                                on_change=_server_moved))
        res = ops.moved(ref, sel.dataset, idx, tuple(vectors), t)
        if not live:
            show.samples([ds.x[idx].numpy(), *res["x"]],
                         [f"Original #{idx}"] + [f"{title} · t = {t:.2f}" for title in titles],
                         width=112, **look)
        else:
            st.caption("Drag t: your browser decodes every step; the page hears the value when you let go.")
        if res["spread"] is not None:
            st.markdown(f"At t = {t:.2f} the decodes of {len(vectors) - 1} redrawn vectors differ from the decode of "
                        f"z + t·v by **{res['spread']:.3f}** per pixel on average (at most {res['spread_max']:.2f}, on "
                        "a 0–1 scale): the smaller, the less the analogy depends on which A and B codes were drawn.")
        ops.write_url(url_classes if source == "Two classes" else None,
                      None if source == "Two classes" else current.vector, current.name, t)


st.subheader("3 · Add t·v to a sample")
c1, c2, c3 = st.columns([2, 3, 1.5], vertical_alignment="bottom")
first_b = int(ops.group_rows(sel.dataset, groups)[1][0]) if groups is not None else 0  # B + (A − B) -> A?
index = int(c1.number_input(f"Sample index (0–{n - 1})", 0, n - 1, step=1,
                            **state.bind_widget("i0", "w_attr_index", lambda i: isinstance(i, int) and 0 <= i < n,
                                                first_b)))
state.put("i0", index)
c2.caption(f"#{index} is a {names[int(ds.y[index])]}. The same sample is A on the Interpolation page.")
move_panel(index, latent_decoder.server_decode_toggle(c3))
with projection_box:
    projection_figure(index)


def analogy_check() -> None:
    """How often B + (A − B) is called A by a classifier trained on the real images (a worker job, two classes)."""
    try:
        check = ops.analogy_job(ref, sel.dataset, groups)
    except ValueError as e:  # QueueFull
        st.caption(f"The analogy check could not start ({e}).")
        return
    if check is None:
        return
    if check.status == "done":
        r = check.result()
        st.markdown(f"**Does the analogy work?** Adding v to each of the {r['n']} codes of {groups.b_label} (t = 1): "
                    f"a classifier trained on the real data calls **{r['to_a']:.0%}** of the decodes "
                    f"{groups.a_label.removeprefix('class ')} ({r['still_b']:.0%} still "
                    f"{groups.b_label.removeprefix('class ')}). For reference, it calls {r['recon_b']:.0%} of their "
                    f"plain reconstructions {groups.b_label.removeprefix('class ')}.")
    elif check.error_class:
        st.caption(f"The analogy check failed: {check.error_text.splitlines()[0]}")
    else:
        def _poll_check() -> None:
            if check.done:
                st.rerun(scope="app")
            st.caption("Checking the analogy on every B sample with a classifier trained on the real data "
                       "(a worker process)…")

        st.fragment(_poll_check, run_every=1.0)()


if groups is not None:
    analogy_check()

finish()
