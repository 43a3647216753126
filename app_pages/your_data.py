"""Your data: upload a data set (.npz, .csv, .zip of class folders, IDX pair), see what was stored, delete it."""

import numpy as np
import pandas as pd
import streamlit as st

from core import data_store
from core.data import DatasetError
from core.user_data import csv_preview
from ui import state, user_data_ops
from ui.sidebar import shared_sidebar

LABEL_GUESSES = ("label", "labels", "class", "target", "y", "species")

sel = shared_sidebar("your_data")
st.title("Your data")
st.markdown(
    "Bring your own labelled data; every page (train, latent map, interpolation, ISDA, few-shot lab) then works "
    "on it. Accepted: an **.npz** with arrays `X` and `y` (optional `class_names`, `X_test`, `y_test`), a **.csv** "
    "with a header row (numbers in every column but the label), a **.zip of image folders** (one folder per "
    "class, PNG or JPEG), or an **IDX pair** (MNIST-format images + labels, both files at once). Everything is "
    "checked in memory before anything is stored. Your uploads are visible only to this browser."
)
if user_data_ops.share_all():
    st.info("This server shares every upload with every session (LATENT_LAB_SHARE_UPLOADS is set).")

files = st.file_uploader("Data file(s)", type=["npz", "csv", "zip", "gz", "ubyte", "idx1-ubyte", "idx3-ubyte"],
                         accept_multiple_files=True, key="w_ud_files",
                         help="The server's upload limit applies (server.maxUploadSize); for larger sets use the "
                              "CLI: --dataset csv:PATH:LABEL_COLUMN or imagefolder:PATH.")
files = list(files or [])
options: dict = {}
if len(files) == 1:
    up = files[0]
    suffix = up.name.lower().rsplit(".", 1)[-1]
    if suffix == "csv":
        try:
            preview = csv_preview(up.getvalue(), up.name)
        except DatasetError as e:
            st.error(f"Not stored — {e}")
            state.stop_page()
        st.caption("The first rows:")
        st.dataframe(preview, hide_index=True)
        columns = [str(c) for c in preview.columns]
        guess = next((c for c in columns if c.lower() in LABEL_GUESSES), columns[-1])
        options["label_column"] = st.selectbox("Label column (the classes)", columns, index=columns.index(guess),
                                               key="w_ud_label")
    elif suffix == "zip":
        c1, c2 = st.columns(2)
        from core.user_images import COLOURS, DEFAULT_SIZE, MAX_RESIZE

        colour = c1.radio("Colour", list(COLOURS), horizontal=True, key="w_ud_colour",
                          help="Grey: 1 channel; RGB: 3. The CLI reads the same folders as "
                               "imagefolder:PATH:grey|rgb:SIZE.")
        options["colour"] = colour
        options["size"] = int(c2.number_input("Resize to (pixels a side)", 4, MAX_RESIZE, DEFAULT_SIZE[colour],
                                              key="w_ud_size"))
name = st.text_input("Name", max_chars=100, key="w_ud_name", placeholder="the file's name")
if st.button("Check and store", type="primary", disabled=not files, key="w_ud_store"):
    try:
        manifest = user_data_ops.store_upload([(f.name, f.getvalue()) for f in files], name, **options)
    except DatasetError as e:
        st.session_state["_ll_ud_error"] = str(e)
    else:
        st.session_state.pop("_ll_ud_error", None)
        st.session_state["_ll_ud_stored"] = manifest["spec"]
        state.put("dataset", manifest["spec"])
        st.rerun()
if st.session_state.get("_ll_ud_error"):
    st.error(f"Not stored — {st.session_state['_ll_ud_error']} Nothing was written.")
if st.session_state.get("_ll_ud_stored"):
    st.success(f"Stored as `{st.session_state['_ll_ud_stored'][:19]}…` and selected in the sidebar: train a model "
               f"on it on **Train or load**.")

# ----------------------------------------------------------------------------- what is stored
st.subheader("Stored data sets")
uploads = user_data_ops.visible_uploads()
if not uploads:
    st.caption("None yet.")
mine = user_data_ops.session_owner_hashes()
for m in uploads:
    split = m["test_split"]
    with st.expander(f"{m['name']} — {m['kind']}, {m['x_shape'][0]:,} rows, {len(m['class_names'])} classes",
                     expanded=m["spec"] == sel.dataset):
        st.markdown(f"From `{m['source']}` ({m['how'].get('kind', '?')}); shape {tuple(m['x_shape'])} "
                    f"{m['x_dtype']}; link id `{m['spec']}`.")
        if split["kind"] == "carved":
            st.caption(f"Test set: {split['n_test']:,} rows carved out once ({split['test_fraction']:.0%} of each "
                       f"class, seed {split['seed']}); the other {split['n_train']:,} rows are the training part "
                       f"every page uses.")
        else:
            st.caption(f"Test set: given with the data ({split['n_test']:,} rows).")
        st.dataframe(pd.DataFrame({"class": m["class_names"], "examples": m["class_counts"]}), hide_index=True)
        if m["spec"] == sel.dataset:   # its first page: a few rows as they are stored
            x, y, names = data_store.load_arrays(m["sha256"], train=True)
            if x.ndim == 4:
                first = x[:16].astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
                st.image([np.clip(im.transpose(1, 2, 0).squeeze(-1) if im.shape[0] == 1 else im.transpose(1, 2, 0),
                                  0, 1) for im in first], caption=[names[c] for c in y[:16]], width=56)
            else:
                cols = m["feature_names"] or [f"f{i}" for i in range(x.shape[1])]
                st.dataframe(pd.DataFrame(x[:10], columns=cols).assign(label=[names[c] for c in y[:10]]))
        with st.popover("Manifest"):
            st.json({k: v for k, v in m.items() if k != "owners"})
        c1, c2 = st.columns(2)
        if c1.button("Use this data set", key=f"w_ud_use_{m['sha256'][:16]}", disabled=m["spec"] == sel.dataset):
            state.put("dataset", m["spec"])
            st.rerun()
        if set(m.get("owners", [])) & mine and c2.button("Delete", key=f"w_ud_del_{m['sha256'][:16]}"):
            user_data_ops.delete_upload(m["spec"])
            if state.get("dataset") == m["spec"]:
                state.put("dataset", None)
            st.session_state.pop("_ll_ud_stored", None)
            st.rerun()
state.sync_url()
