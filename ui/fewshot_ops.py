"""Few-shot runs from the page: core.fewshot.run_experiment with its cells on the shared executor
(worker processes, or a Ray cluster), not in the web server; list/load runs."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import pandas as pd

from core.executor import JobHandle
from ui import catalog, jobs, session_jobs
from ui.quota import check_disk_quota


def fewshot_dir():
    return catalog.runs_dir() / "fewshot"


def run_folder_name(dataset: str) -> str:
    """<time>-<dataset>-<random>: two runs started in the same second (two users) get different folders."""
    ds = dataset.replace(":", "_").replace("/", "_")[:30]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{ds}-{uuid.uuid4().hex[:6]}"


class _RunExecutor:
    """The shared executor as run_experiment sees it: every task tagged with this run's group, so the page
    can show the run's place in the queue."""

    def __init__(self, executor, group: str):
        self.executor, self.group = executor, group

    def map(self, fn, tasks, *, stop=None, on_result, ready=None):
        self.executor.map(fn, tasks, stop=stop, on_result=on_result, group=self.group, ready=ready)


def start_run(spec, owner: str) -> JobHandle:
    """spec: core.fewshot.ExperimentSpec (already validated). Writes runs/fewshot/<time>-<dataset>-<random>/.

    The run counts as one of `owner`'s jobs (QueueFull, a ValueError, when the browser has its share; DiskQuotaFull,
    a ValueError, when the runs folder is full). Its
    handle (the one job protocol) runs the light orchestration in a server thread (executor.run_here: it
    maps tasks and writes records); the generators and cells run on the shared executor's workers.
    handle.queue_position: the place of the run's first waiting task while none runs; its events carry
    the finished records (run_records), its progress the counts; cancel() stops it, keeping finished cells."""
    check_disk_quota()
    out = fewshot_dir() / run_folder_name(spec.dataset)
    executor = jobs.shared_executor()
    with session_jobs.admit() as address:
        release = executor.reserve(owner)
        group = f"fewshot-{uuid.uuid4().hex}"
        try:
            job = executor.run_here(_run, {"spec": spec, "out": str(out), "executor": _RunExecutor(executor, group)},
                                    name="fewshot", queue_position=lambda: executor.group_status(group)["position"])
        except BaseException:
            release()
            raise
        job.add_done_callback(lambda _h: release())
        session_jobs.track("fewshot", job, owner, address=address)
    job.path = str(out)
    return job


def _run(spec, out: str, executor: _RunExecutor, report, stop) -> str:
    """The orchestration of one run (in a server thread: it only maps cells onto the executor and writes
    their records). Each report carries the counts, plus the finished cell's record when there is one."""
    from core.fewshot import run_experiment

    base = {"path": out, "done": 0, "total": len(spec.cells()), "phase": "generators"}
    report(base)

    def on_progress(p: dict) -> None:
        report({**base, "done": p["done"], "total": p["total"], "cell": p["cell"], "phase": p["phase"],
                "generators_done": p.get("generators_done"), "generators_total": p.get("generators_total"),
                "record": p.get("record")})

    run_experiment(spec, Path(out), on_progress=on_progress, stop=stop, executor=executor)
    return out


def run_records(job: JobHandle) -> list[dict]:
    """The records of the cells a run's job has finished so far, in order."""
    return [e["record"] for e in job.events if e.get("record")]


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
