"""The shared sidebar: dataset and checkpoint pickers, drawn by every page (including home).

Imports no torch: it lists checkpoints from their config.json files (ui.catalog).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ui import catalog, jobs, owners, session_jobs, state, user_data_ops
from ui.resources import entries


_REFUSED = "_ll_upload_refused"  # why a linked data set was not opened


@dataclass
class Selection:
    dataset: str
    ckpt: str | None  # checkpoint key, None when there is none for this dataset
    entry: catalog.CheckpointEntry | None


def shared_sidebar(page: str) -> Selection:
    """Draw the pickers. `page` names the calling page: the widgets get per-page keys, because a
    widget with the same key on two pages is reset to its default on a page switch."""
    state.init()
    _keep_alive()
    all_entries = entries()
    datasets = list(catalog.DATASETS)
    uploads = user_data_ops.visible_uploads()  # this browser's own data sets (all, if the operator shares them)
    datasets += [m["spec"] for m in uploads]
    for e in all_entries:
        # An upload's config.json is user input: its dataset may only name a registry id, never a path
        # (idx:/npz: specs would make the server read files the uploader chose). A checkpoint trained on
        # someone's uploaded data set does not make that data set visible to others.
        trusted = not e.key.startswith("upload/") and not user_data_ops.is_upload(e.dataset)
        if e.dataset not in datasets and e.dataset != "?" and trusted:
            datasets.append(e.dataset)
    sb = st.sidebar
    if state.get("dataset") not in datasets:
        if user_data_ops.is_upload(state.get("dataset")):  # a link to someone else's (or a deleted) upload
            st.session_state[_REFUSED] = user_data_ops.not_visible_message(state.get("dataset"))
        state.put("dataset", catalog.DEFAULT_DATASET)
    if st.session_state.get(_REFUSED):  # said until another data set is picked: a page switch keeps it
        if state.get("dataset") == catalog.DEFAULT_DATASET:
            sb.warning(st.session_state[_REFUSED])
        else:
            del st.session_state[_REFUSED]
    sb.markdown("### Shared settings")
    spec = sb.selectbox("Dataset", datasets, help="Used by every page. Kept in the URL. Your own data sets are "
                        "added on the Your data page.", format_func=lambda s: user_data_ops.label(s, uploads),
                        **state.bind_widget("dataset", f"w_dataset_{page}", lambda v: v in datasets))
    state.put("dataset", spec)
    state.forget_indices_of_other_datasets(spec)

    usable = [e for e in all_entries if e.dataset == spec]
    if not usable:
        sb.info(f"No checkpoint was trained on {user_data_ops.label(spec, uploads)} yet: train one on "
                f"**Train or load**.")
        state.put("ckpt", None)
        state.sync_url()
        return Selection(spec, None, None)
    keys = [e.key for e in usable]
    if state.get("ckpt") not in keys:
        state.put("ckpt", catalog.default_key(usable, spec))
    labels = {e.key: e.label for e in usable}
    key = sb.selectbox("Checkpoint", keys, format_func=lambda k: labels.get(k, k),
                       help="Shipped, trained here, or uploaded. Kept in the URL.",
                       **state.bind_widget("ckpt", f"w_ckpt_{page}", lambda v: v in keys))
    state.put("ckpt", key)
    warning = state.url_warning()
    if warning:
        sb.warning(warning)
    sb.caption("Copy the address bar to share this view.")
    state.sync_url()
    return Selection(spec, key, catalog.find(usable, key))


def _keep_alive() -> None:
    """Report this browser as present (its jobs live on while it is) and ask it to keep its token. While the
    browser has jobs, a sidebar fragment keeps reporting every HEARTBEAT_S, so a tab left on one page keeps
    them alive (a page that starts a job reruns once, so that the fragment is there from the start). Only
    then: an auto-rerunning fragment in every idle tab would cost the server and can race full reruns."""
    owner = jobs.session_owner()
    session_jobs.heartbeat(owner)
    owners.remember_browser(st.sidebar)
    if session_jobs.owner_jobs(owner):
        with st.sidebar:
            st.fragment(_jobs_note, run_every=session_jobs.HEARTBEAT_S)()


def _jobs_note() -> None:
    owner = jobs.session_owner()
    session_jobs.heartbeat(owner)
    mine = session_jobs.owner_jobs(owner)
    if not mine:
        return
    st.caption(f"Jobs of this browser: {', '.join(f'{t.kind} ({t.handle.status})' for t in mine)} — at most "
               f"{jobs.shared_executor().per_owner} at once. Closing every tab stops them.")
    if session_jobs.own_browser(owner):  # any tab of the browser (a reload too) can stop its jobs
        for t in mine:
            if st.button(f"Stop {t.kind} #{t.id}", key=f"w_my_stop_{t.id}"):
                session_jobs.stop_job(t.id, by="its browser")
                st.rerun()
