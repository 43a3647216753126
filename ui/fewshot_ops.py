"""Few-shot runs from the page: start core.fewshot.run_experiment in a background Job, list/load runs."""

from __future__ import annotations

import io
import time

import pandas as pd

from ui import catalog, jobs


def fewshot_dir():
    return catalog.runs_dir() / "fewshot"


def start_run(spec) -> jobs.Job:
    """spec: core.fewshot.ExperimentSpec (already validated). Writes runs/fewshot/<timestamp>/."""
    from core.fewshot import run_experiment

    out = fewshot_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.dataset.replace(':', '_').replace('/', '_')[:30]}"

    def work(job: jobs.Job) -> str:
        job.report(path=str(out), done=0, total=len(spec.cells()))

        def on_progress(p: dict) -> None:
            job.report(p.get("record"), done=p["done"], total=p["total"], cell=p["cell"])

        run_experiment(spec, out, on_progress=on_progress, stop=job.stop)
        return str(out)

    return jobs.start("fewshot", work)


def summary_table(records: list[dict]) -> pd.DataFrame:
    """method x shots rows: accuracy and weighted F1 as mean ± 95% CI over seeds."""
    from core.fewshot import summarize

    if not records:
        return pd.DataFrame()
    acc = {(r["method"], r["shots"]): r for r in summarize(records, "accuracy")}
    f1 = {(r["method"], r["shots"]): r for r in summarize(records, "f1_weighted")}

    def fmt(r):
        ci = r["ci95"]
        return f"{r['mean']:.3f} ± {ci:.3f}" if ci == ci else f"{r['mean']:.3f}"

    rows = [{"method": m, "data": acc[(m, k)].get("data", ""), "shots": k, "seeds": acc[(m, k)]["n"],
             "accuracy": fmt(acc[(m, k)]),
             "weighted F1": fmt(f1[(m, k)]), "F1 vs none": f1[(m, k)].get("diff_vs_none"),
             "Holm-significant": f1[(m, k)].get("holm")}
            for (m, k) in acc]
    return pd.DataFrame(rows)


def chart_rows(records: list[dict], metric: str = "f1_weighted") -> list[dict]:
    """summarize() rows with ci_low / ci_high for core.viz.results_figure (NaN CI -> no bar)."""
    from core.fewshot import summarize

    rows = []
    for r in summarize(records, metric):
        ci = r["ci95"] if r["ci95"] == r["ci95"] else 0.0
        rows.append({**r, "ci_low": r["mean"] - ci, "ci_high": r["mean"] + ci})
    return rows


def records_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    pd.DataFrame(records).to_csv(buf, index=False)
    return buf.getvalue()
