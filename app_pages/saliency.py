"""Saliency: where a few-shot classifier looks, trained without and with a batch augmentation
(captum's Saliency, SmoothGrad and Integrated Gradients), and what saliencymix pastes."""

import pandas as pd
import streamlit as st

from ui.resources import UiError, dataset, friendly
from ui.sidebar import shared_sidebar
from ui.state import stop_page

sel = shared_sidebar("saliency")
st.title("Saliency")
st.markdown(
    "A **saliency map** shows which input pixels move a classifier's score most (seed 003: it tells us where "
    "the object is, though training only saw class labels). Here two few-shot classifiers learn from the same "
    "shots with the same budget — one without augmentation, one with the augmentation you pick — and their "
    "maps on unseen test images are shown side by side. **SaliencyMix** (Uddin et al. 2021) uses saliency the "
    "other way round: it pastes the most salient box of one image into another, so the pasted part holds the "
    "object, and weights the labels by the pasted area. "
    "Try first: compare *none* with *saliencymix* at 5 shots, then with *mixup*."
)

from core.augment import AUGMENTATIONS  # noqa: E402  (after the title: the first torch import takes a moment)
from core.saliency import METHOD_TITLES  # noqa: E402
from ui import jobs  # noqa: E402
from ui.saliency_ops import pair_job, pair_tiles, saliencymix_examples  # noqa: E402

try:
    ds = dataset(sel.dataset)
except UiError as e:
    st.error(str(e))
    stop_page()
if not ds.is_image:
    st.info(f"Saliency maps are drawn for images; {sel.dataset} is a table. Pick an image data set "
            f"(digits or mnist5k) in the sidebar.")
    stop_page()

batch_methods = [n for n, a in AUGMENTATIONS.items() if a.stage == "batch"]
with st.form("w_sal_form"):
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Augmentation", batch_methods, index=batch_methods.index("saliencymix"), key="w_sal_method",
                          help="\n".join(f"- **{n}**: {AUGMENTATIONS[n].description}" for n in batch_methods))
    shots = c2.number_input("Shots per class", 1, 50, 5, key="w_sal_shots")
    steps = c3.select_slider("Training steps (each classifier)", [50, 100, 150, 300, 600], 100, key="w_sal_steps",
                             help="The same budget for both; small so the page answers in seconds.")
    seed = c4.number_input("Seed (shots and training)", 0, 10_000, 0, key="w_sal_seed")
    c5, c6, _ = st.columns([1, 1, 2])
    n_images = c5.slider("Test images", 2, 10, 6, key="w_sal_n")
    pick = c6.number_input("Image draw", 0, 10_000, 0, key="w_sal_pick", help="Which test images are shown.")
    st.form_submit_button("Train and draw", type="primary")

job = pair_job(sel.dataset, int(shots), method, int(seed), int(steps), int(n_images), int(pick))
jobs.wait_for(job, f"Training two classifiers on {shots} shots per class ({steps} steps each)")
if job.error_class == "user":
    st.error(f"Training the classifiers failed: {job.error_text}")
    stop_page()
elif job.error_class:
    head, _, trace = job.error_text.partition("\n")
    st.error(f"Training the classifiers failed ({'out of resources' if job.error_class == 'resources' else 'a bug'}): "
             f"{head}")
    if trace:
        st.code(trace, language="text")
    stop_page()
if job.status != "done":  # cancelled (the server shuts down); the next run submits it again
    st.warning("The training was stopped before it finished; rerun the page to start it again.")
    stop_page()
res = pair_tiles(job.result(), list(ds.class_names))

acc = res["accuracy"]
st.subheader("Where each classifier looks")
st.caption(f"Accuracy on the {sel.dataset} images not among the shots: without augmentation "
           f"**{acc['none']:.1%}**, with {method} **{acc[method]:.1%}**. Maps: brighter = more salient, "
           f"each scaled to its own maximum.")
columns = st.columns(2, gap="large")
for col, name in zip(columns, ["none", method]):
    m = res["models"][name]
    with col:
        st.markdown(f"**{'Without augmentation' if name == 'none' else f'With {name}'}**")
        caps = [f"{t} → {p} ({c:.0%})" for t, p, c in zip(res["truth"], m["pred"], m["conf"])]
        st.image(res["images"], caption=caps, width=64)
        for key, title in METHOD_TITLES.items():
            st.caption(title)
            st.image(m["maps"][key], width=64)

st.markdown("**Share of the saliency on the digit's pixels** (the ink covers "
            f"{res['ink_area']:.0%} of these images; higher = looks more at the digit)")
table = pd.DataFrame({("none" if n == "none" else n): {METHOD_TITLES[k]: v for k, v in r["on_ink"].items()}
                      for n, r in res["models"].items()})
st.dataframe(table.style.format("{:.0%}"), width="content")

st.subheader("What saliencymix makes")
st.markdown("Each tile pastes a box, centred on the most salient point (spectral residual) of another image; "
            "the caption is its soft label, weighted by the pasted area.")
with friendly("The saliencymix examples"):
    tiles, caps = saliencymix_examples(sel.dataset, 8, int(pick))
    st.image(tiles, caption=caps, width=64)
