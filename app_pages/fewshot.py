"""Few-shot lab: configure an experiment, run it in the background, compare methods by shots."""

import json

import pandas as pd
import streamlit as st

from ui import jobs, session_jobs, state
from ui.fewshot_ops import chart_rows, fewshot_dir, records_csv, run_records, start_run, summary_table
from ui.sidebar import shared_sidebar

shared_sidebar("fewshot")
st.title("Few-shot lab")
st.markdown(
    "Does augmentation help when only a handful of labelled examples per class exist? Each run trains the "
    "same small classifier on k shots per class, once per method and seed, and scores it on held-out data "
    "(the Bonn slides' few-shot tables; LSI from Liu et al. 2018; ISDA from Wang et al. 2019). "
    "Try first: the defaults (digits, 5 shots, none / classic / mixup — under half a minute), then add `lsi` "
    "or `vae-interp` to see the latent methods (each first trains a small generator, ~20 s on a CPU)."
)

from core.augment import AUGMENTATIONS, list_augmentations  # noqa: E402
from core.data import list_datasets  # noqa: E402
from core.viz import results_figure  # noqa: E402
from core.executor import JobHandle  # noqa: E402
from core.fewshot import ExperimentSpec, list_runs, load_run, settings_table  # noqa: E402
from core.settings import dotted  # noqa: E402

if st.session_state.get("_ll_fs_job") is None:  # after a reload: the run this browser started
    adopted = session_jobs.adopt(jobs.session_owner(), "fewshot")
    if adopted is not None:
        st.session_state["_ll_fs_job"] = adopted
job: JobHandle | None = st.session_state.get("_ll_fs_job")

# ----------------------------------------------------------------------------- configure
with st.form("fs_form"):
    c1, c2, c3 = st.columns(3)
    datasets = list_datasets()
    spec_ds = c1.selectbox("Dataset", datasets, index=datasets.index("digits") if "digits" in datasets else 0,
                           key="w_fs_ds", help="digits and the tabular sets run in seconds; MNIST takes longer.")
    shots = c1.multiselect("Shots per class", [1, 2, 5, 10, 20, 50], default=[5], key="w_fs_shots")
    methods = c2.multiselect("Methods", list_augmentations(), default=["none", "classic", "mixup"],
                             key="w_fs_methods", format_func=lambda m: m,
                             help="\n".join(f"- **{k}**: {a.description}" for k, a in AUGMENTATIONS.items()))
    combos = c2.text_input("Combinations (optional, comma-separated)", "", key="w_fs_combos",
                           placeholder="classic+lsi, mixup+isda")
    seeds = c3.number_input("Seeds", 1, 10, 2, key="w_fs_seeds")
    steps = c3.number_input("Budget: classifier steps", 20, 5000, 300, step=20, key="w_fs_steps",
                            help="The same for every method; each step sees min(64, all) real shots.")
    n_gen = c3.number_input("Generated per class (latent methods, distill)", 1, 5000, 50, key="w_fs_ngen")
    c4, c5, c6 = st.columns(3)
    gen_ratio = c4.number_input("Generated per real example in a batch", 0.1, 10.0, 1.0, step=0.1, key="w_fs_ratio")
    gen_data = c5.radio("Generators train on", ["pool", "labelled"], horizontal=True, key="w_fs_gen_data",
                        help="pool: all training images without labels (marks the method pool-using); "
                             "labelled: only the shots (shots-only).")
    evaluate_on = c6.radio("Score on", ["test", "validation"], horizontal=True, key="w_fs_eval",
                           help="Choose settings on the validation split; report on test.")
    with st.expander("Generator settings (every one can be set)"):
        gen_settings = {}
        for name, fields in settings_table().items():
            st.markdown(f"**{name}**")
            cols = st.columns(4)
            for i, (field, default) in enumerate(fields.items()):
                w = cols[i % 4]
                key = f"w_fs_gen_{name}_{field}"
                if isinstance(default, bool):
                    value = w.checkbox(field, default, key=key)
                elif isinstance(default, int):
                    value = w.number_input(field, value=default, step=1, key=key)
                elif isinstance(default, float):
                    value = w.number_input(field, value=default, format="%.4g", key=key)
                else:
                    value = w.text_input(field, str(default), key=key)
                if value != default:
                    gen_settings.setdefault(name, {})[field] = value
    params_text = st.text_input("Method parameters (optional, comma-separated METHOD.NAME=VALUE)", "",
                                key="w_fs_params", placeholder="mixup.alpha=0.4, isda.lambda_0=0.1")
    go = st.form_submit_button("Run", type="primary", disabled=bool(job and not job.done))

if go:

    chosen = list(methods) + [m.strip() for m in combos.split(",") if m.strip()]
    started = None
    try:   # every value is checked here, before any work: a bad one is the user's to fix, not a bug
        params = dotted([p.strip() for p in params_text.split(",") if p.strip()], "parameter", "mixup.alpha=0.4")
        spec = ExperimentSpec(dataset=spec_ds, shots=sorted(shots), methods=chosen, seeds=int(seeds),
                              n_generated=[int(n_gen)], gen_data=gen_data, evaluate_on=evaluate_on,
                              recipe={"steps": int(steps), "gen_ratio": float(gen_ratio)}, generators=gen_settings,
                              params=params)
    except ValueError as e:
        st.error(f"Cannot start, your settings: {e}")
    else:
        try:
            started = start_run(spec, owner=jobs.session_owner())
        except ValueError as e:
            st.error(f"Cannot start: {e}")
    if started is not None:
        st.session_state["_ll_fs_job"] = started
        st.session_state["_ll_fs_seen"] = False
        st.session_state["_ll_fs_no_baseline"] = "none" not in chosen
        st.rerun()  # the sidebar (drawn before the job existed) then keeps this browser's jobs alive

if st.session_state.pop("_ll_fs_no_baseline", False):
    st.warning("Without `none` there is no baseline to compare against.")


def show_results(records: list[dict], title: str, key: str) -> None:
    if not records:
        st.caption("No finished cells yet.")
        return
    st.markdown(f"**{title}** — mean ± 95% CI over seeds; *data*: shots-only methods see only the k labelled "
                "shots, pool-using ones also the unlabelled pool (directly, or through a generator trained on it)")
    st.dataframe(summary_table(records), width="stretch", hide_index=True,
                 column_config={"F1 vs none": st.column_config.NumberColumn(
                     format="%+.3f", help="paired difference in weighted F1 against `none` on the same seeds")})
    metric = st.radio("Chart", ["f1_weighted", "accuracy"], horizontal=True, key=f"w_fs_metric_{key}",
                      format_func=lambda m: {"f1_weighted": "weighted F1", "accuracy": "accuracy"}[m])
    st.plotly_chart(results_figure(chart_rows(records, metric), metric=metric), key=f"w_fs_chart_{key}")
    c1, c2 = st.columns(2)
    c1.download_button("Download CSV", records_csv(records), "fewshot-results.csv", "text/csv", key=f"dl_csv_{key}")
    c2.download_button("Download JSON", json.dumps(records, indent=1), "fewshot-results.json", "application/json",
                       key=f"dl_json_{key}")


def run_panel() -> None:
    job = st.session_state.get("_ll_fs_job")
    if job is None:
        return
    prog, records = job.progress, run_records(job)
    total, done = int(prog.get("total") or 0), int(prog.get("done") or 0)
    label = f"{done}/{total} cells" + (f" · last: seed {prog['cell'][0]}, {prog['cell'][1]} shots, {prog['cell'][2]}"
                                       if prog.get("cell") else "")
    if not job.done:
        pos = job.queue_position
        if pos:
            label = f"waiting for a free worker — place {pos} in the queue"
        elif (prog.get("generators_done") or 0) < (prog.get("generators_total") or 0):
            label = f"training generators {prog.get('generators_done') or 0}/{prog['generators_total']} · {label}"
        with st.status(f"Running… {label}", expanded=True):
            st.progress(done / max(total, 1))
            st.caption("Cells run side by side in worker processes; the page stays usable and results appear "
                       "cell by cell. Cells that need a generator start once it is trained.")
            if st.button("Stop", key="w_fs_stop"):
                job.cancel()
    elif job.error_class == "bug":
        head, _, trace = job.error_text.partition("\n")
        st.error(f"The run failed with an internal error (a bug, not your settings): {head}. "
                 "The finished cells are kept in its run folder.")
        if trace:
            st.code(trace, language="text")
    elif job.error_class:
        st.error(f"The run failed: {job.error_text} The finished cells are kept in its run folder.")
    else:
        st.status(f"Finished{' (stopped)' if job.cancel_requested else ''}: {label}", state="complete")
    show_results([r for r in records if r], "This run", "live")
    if job.done and not st.session_state.get("_ll_fs_seen"):
        st.session_state["_ll_fs_seen"] = True
        st.rerun(scope="app")  # refresh the list of runs below


st.subheader("Current run")
if job is not None and not job.done:
    st.fragment(run_panel, run_every=1.0)()
elif job is not None:
    run_panel()
else:
    st.caption("Nothing running. Configure a run above, or open an earlier one below.")

# ----------------------------------------------------------------------------- earlier runs
st.subheader("Earlier runs")
runs = list_runs(fewshot_dir())
if not runs:
    st.caption(f"No runs yet in `{fewshot_dir()}`.")
else:
    table = pd.DataFrame([{k: r[k] for k in ("name", "created", "dataset", "shots", "methods", "seeds",
                                            "n_records", "complete", "damaged")} for r in runs])
    st.dataframe(table, width="stretch", hide_index=True)
    names = [r["name"] for r in runs]
    pick = st.selectbox("Open a run", names, key="w_fs_open")
    try:
        run = load_run(next(r["path"] for r in runs if r["name"] == pick))
    except (ValueError, OSError) as e:
        st.error(f"Cannot open that run: {e}")
    else:
        show_results(run["records"], pick, "old")

state.sync_url()
