"""Train or load a model: settings -> background training with live loss; or pick/upload a checkpoint."""

from dataclasses import fields

import pandas as pd
import streamlit as st

from core.config import TrainConfig
from ui import catalog, jobs, session_jobs, show, state
from ui.config_form import config_widgets
from ui.resources import MAX_UPLOAD_BYTES, ModelRef, UiError, check_compatible, dataset, friendly, register_upload
from ui.sidebar import shared_sidebar
from ui.training import TRAIN_FIELDS, model_kinds, start_training

sel = shared_sidebar("train_load")
st.title("Train or load")
st.markdown(
    "Every other page works on the checkpoint chosen in the sidebar. Here you can **train** your own "
    "(e.g. an adversarial autoencoder with a uniform or Gaussian prior as in Liu et al. 2018, a beta-VAE as "
    "in the Bonn slides, or a Wasserstein autoencoder) or **load** one and check how well it reconstructs. "
    "Try first: look at the reconstructions of the shipped `aae-uniform-z16`, then train a z = 2 model "
    "for 5 epochs and compare it on the latent map."
)

tab_load, tab_train = st.tabs(["Load / inspect", "Train"])

# ----------------------------------------------------------------------------- load
with tab_load:
    st.caption("Pick a shipped, trained or uploaded checkpoint in the sidebar; upload your own here.")
    up = st.file_uploader("Upload a checkpoint (a zipped checkpoint folder: config.json + model.safetensors)",
                          type=["zip"], key="w_upload", max_upload_size=MAX_UPLOAD_BYTES // 2**20,
                          help="Checked in memory and never unpickled; size-limited (see .streamlit/config.toml).")
    if up is not None and st.session_state.get("_ll_upload_done") != up.file_id:
        st.session_state["_ll_upload_done"] = up.file_id
        try:
            new_key = register_upload(up.getvalue())
        except UiError as e:
            st.session_state["_ll_upload_error"] = str(e)
        else:
            st.session_state.pop("_ll_upload_error", None)
            state.put("ckpt", new_key)
            st.rerun()
    if st.session_state.get("_ll_upload_error"):
        st.error(f"Upload rejected — {st.session_state['_ll_upload_error']} "
                 "The previously selected checkpoint stays selected.")

    if sel.ckpt is None:
        st.info("No checkpoint for this dataset yet — use the Train tab.")
    else:
        try:
            ckpt, ds = check_compatible(sel.ckpt, sel.dataset)
        except UiError as e:
            st.error(str(e))
        else:
            meta = ckpt.meta
            st.subheader(sel.ckpt.split("/", 1)[1])
            m = meta.get("model", {})
            cols = st.columns(4)
            cols[0].metric("Model", catalog.describe_model(m))
            cols[1].metric("Latent size", m.get("latent_dim", "?"))
            recon = meta.get("metrics", {}).get("recon_mse")
            cols[2].metric("Reconstruction MSE", f"{recon:.4f}" if isinstance(recon, (int, float)) else "—")
            cols[3].metric("Trained on", meta.get("dataset", "?"))
            from ui.compute import reconstructions

            with friendly("Reconstructing"):
                x, x_hat = reconstructions(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset, n=12)
                st.markdown("**Originals (top) and reconstructions (bottom)** — the first sample of each class, "
                            "then more.")
                look = show.style(ds)
                show.samples(x, width=56, **look)
                show.samples(x_hat, width=56, **look)
            hist = meta.get("history") or {}
            if hist.get("epoch"):
                from core.viz import loss_curve

                fig = loss_curve(hist, title=f"Training losses per epoch ({len(hist['epoch'])} epochs)")
                fig.update_layout(height=280)
                st.plotly_chart(fig, key="w_loss_curve")
            with st.expander("Full config"):
                st.json({k: meta.get(k) for k in ("model", "train", "dataset", "metrics", "versions", "created")})

# ----------------------------------------------------------------------------- train
with tab_train:
    if st.session_state.get("_ll_train_job") is None:  # after a reload: the training this browser started
        st.session_state["_ll_train_job"] = session_jobs.adopt(jobs.session_owner(), "train")
    job: jobs.ExecutorJob | None = st.session_state.get("_ll_train_job")
    kinds = model_kinds()
    # Outside the form: choosing a kind redraws the form with that kind's own settings.
    kind = st.selectbox("Model", list(kinds), key="w_t_model",
                        format_func=lambda k: f"{k.upper()} — {kinds[k].description}")
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        model_values = config_widgets(kinds[kind], "w_t_", columns=[c1, c2], values={"latent_dim": 2},
                                      bounds={"latent_dim": (1, 128)})
        train_values = config_widgets(TrainConfig, "w_t_", columns=[c3], values={"epochs": 5},
                                      bounds={"epochs": (1, 200), "lr": (1e-5, 1e-1), "seed": (0, 2**31 - 1)},
                                      skip=tuple(f.name for f in fields(TrainConfig) if f.name not in TRAIN_FIELDS))
        go = st.form_submit_button(f"Train on {sel.dataset}", type="primary",
                                   disabled=bool(job and job.running))
    if go:
        try:
            ds = dataset(sel.dataset)
            job = start_training(ds, {"kind": kind, **model_values}, train_values,
                                 owner=jobs.session_owner(), spec=sel.dataset)
        except (UiError, ValueError) as e:  # bad settings, or this session's share of the queue is full
            st.error(f"Cannot start training: {e}")
        else:
            st.session_state["_ll_train_job"] = job
            st.session_state["_ll_train_seen"] = False
            st.rerun()  # the sidebar (drawn before the job existed) then keeps this browser's jobs alive

    def progress_panel() -> None:
        job = st.session_state.get("_ll_train_job")
        if job is None:
            st.caption("Training runs in a worker process: the other pages stay usable meanwhile.")
            return
        prog, events = job.snapshot()
        total = max(int(prog.get("total_steps") or 1), 1)
        frac = min(int(prog.get("step") or 0) / total, 1.0)
        label = f"epoch {prog.get('epoch', 0)} · step {prog.get('step', 0)}/{total}"
        if job.running and job.status == "queued":
            pos = job.queue_position
            st.progress(0.0, text=f"Waiting for a free worker — place {pos} in the queue" if pos
                        else "Starting…")
            if st.button("Cancel", key="w_t_stop"):
                job.request_stop()
        elif job.running:
            st.progress(frac, text=f"Training… {label}")
            if st.button("Stop", key="w_t_stop"):
                job.request_stop()
                st.toast("Stopping: what has been trained is saved…")
        elif job.error:
            if job.error_kind == "bug":
                head, _, trace = job.error.partition("\n")
                st.error(f"Training failed with an internal error (a bug, not your settings): {head}")
                if trace:
                    st.code(trace, language="text")
            else:
                st.error(f"Training failed: {job.error}")
        elif job.result is None:
            st.warning("Stopped before anything could be saved.")
        else:
            st.progress(1.0, text=f"Done{' (stopped early)' if prog.get('stopped') else ''}: {label}")
            st.success(f"Saved as `{job.result}` and selected in the sidebar.")
        if events:
            df = pd.DataFrame([e["losses"] for e in events], index=[e["step"] for e in events])
            st.line_chart(df, height=240, x_label="step")
        if job.done and job.result and not st.session_state.get("_ll_train_seen"):
            st.session_state["_ll_train_seen"] = True
            state.put("dataset", getattr(job, "dataset", sel.dataset))
            state.put("ckpt", job.result)
            st.rerun(scope="app")

    if job is not None and job.running:
        st.fragment(progress_panel, run_every=0.75)()  # polls only while training runs
    else:
        progress_panel()

state.sync_url()
