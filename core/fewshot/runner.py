"""Run a few-shot experiment: spec -> generator tasks -> cell tasks -> records in a run folder.

Two kinds of task go through one executor map (core.executor; its inline executor when none is given):
generator tasks train every generator the methods need (one per seed for generators of the unlabelled pool,
per (seed, shots) for those of the labelled shots) and save each as checkpoint folders under
<run>/generators/; cell tasks load them from there, so a cell's record is bit-identical whichever worker,
thread or process ran it, in any order, alone or after a resume (all but the timing keys `seconds`,
`device`, `worker`). Tasks go seed by seed, generators first; a cell starts once its own generators are
saved, so cells that need none (and other seeds' generators) keep the workers busy meanwhile — no worker
idles at a phase boundary, and the first results come before the last generator is trained. After each
cell, config.json / results.json / results.csv are rewritten atomically (unique temporary names), sorted in cell order; cells already in results.json are skipped.

One writer per run folder (core.fewshot.runfiles): a second run on a folder in use is refused with RunLocked,
naming the holder. A generator folder counts as done only when it is complete (its manifest, written last into a
temporary folder that is renamed into place); one left incomplete by a killed run is removed and retrained.

Batched cells (core.fewshot.batched): with `batch` > 1, the cells of one (shots, n_generated, method) go to one
task, up to `batch` seeds at a time, trained as one stacked model; each record is written as it comes, like a
single cell's. A batch waits for the generators of all its seeds. The default (`batch=None`) is what measured
faster: batches of up to AUTO_BATCH cells on CUDA, single cells on a CPU (bench/batched_cells.py: a batch is no
faster there, and single cells keep the records bit-identical to the committed ones). A cell's batched record
does not depend on which cells shared its batch (tests/test_batched.py), so a resume batches what is left.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from core.device import pick_device
from core.executor import JobFailed, get_executor
from core.fewshot.cells import generator_data, load_splits, run_cell
from core.fewshot.context import generator_key
from core.fewshot.generators import GENERATORS, Stopped, generator_config, save_generator
from core.fewshot.report import summarize
from core.fewshot.runfiles import run_lock
from core.files import atomic_write
from core.fewshot.spec import Cell, ExperimentSpec
from core.augment import method_needs

log = logging.getLogger(__name__)
RESUMABLE = ("shots", "methods", "seeds", "device", "n_generated")   # may change between invocations of a run
AUTO_BATCH = 32     # cells per batch on CUDA when batch=None (the headline's 10 seeds of a (shots, method) fit)


# ------------------------------------------------------------------------------------------------ tasks

def plan_generators(spec: ExperimentSpec, cells: list | None = None) -> list[dict]:
    """One task per generator folder the cells (default: all) will load: {"seed", "name", "shots", "key"}
    (shots: the cell's k for generators of the labelled shots; unused by pool generators)."""
    seen, tasks = set(), []
    for seed, shots, _, method in spec.cells() if cells is None else cells:
        for name in sorted(method_needs(method)):
            if GENERATORS[name].scope == "cell":
                continue
            key = generator_key(name, seed, shots, spec.gen_data)
            if key not in seen:
                seen.add(key)
                tasks.append({"seed": seed, "name": name, "shots": shots, "key": key})
    return tasks


def train_generator_task(spec: dict, run_dir: str, seed: int, name: str, shots: int, key: str) -> dict:
    """Train one generator and save it under run_dir/generators/key/ (skipped when it is there, complete). A folder
    left incomplete (a run killed while it was saved by an older version; a `.key.*.partial` folder by this one) is
    removed first: it is this run's own, and a half-saved generator is retrained, never trusted. The result's
    "note" says so."""
    import shutil

    from core.fewshot.generators import generator_complete

    from core.fewshot.kernels import apply as apply_kernel_pin

    apply_kernel_pin()                                  # --deterministic: the generators' workers too
    spec_obj = ExperimentSpec.from_dict(spec)
    gens = Path(run_dir) / "generators"
    folder = gens / key
    if generator_complete(folder):
        return {"key": key, "seconds": 0.0, "skipped": True}
    note = None
    if folder.exists():
        note = f"generators/{key} was saved only in part (a run stopped while saving it): removed and retrained"
        shutil.rmtree(folder)
    for leftover in gens.glob(f".{key}.*.partial") if gens.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)
    t0 = time.perf_counter()
    data = generator_data(spec_obj, load_splits(spec_obj), name, seed, shots)
    device = str(pick_device(spec_obj.device))
    models = GENERATORS[name].train(data, generator_config(name, spec_obj.generators), (seed, key), device)
    save_generator(folder, name, models, data)
    return {"key": key, "seconds": time.perf_counter() - t0, "skipped": False, **({"note": note} if note else {})}


def run_cell_task(spec: dict, run_dir: str, seed: int, shots: int, method: str, n_generated: int | None,
                  worker: str = "", stop=None) -> dict:
    spec_obj = ExperimentSpec.from_dict(spec)
    return run_cell(spec_obj, Cell(seed, shots, n_generated, method), run_dir, device=pick_device(spec_obj.device),
                    stop=stop, worker=worker or f"pid{os.getpid()}")


def run_batch_task(spec: dict, run_dir: str, cells: list, stop=None) -> list[dict]:
    """The records of a batch of cells ([seed, shots, n_generated, method] each) trained as stacked models. A
    stop while the batch scores its cells returns the records finished so far (the inline executor keeps them;
    worker processes drop a stopped task's result, as they drop a cell in progress)."""
    from core.fewshot.batched import run_batch

    spec_obj = ExperimentSpec.from_dict(spec)
    done: list[dict] = []
    try:
        run_batch(spec_obj, [Cell(*c) for c in cells], run_dir, device=pick_device(spec_obj.device), stop=stop,
                  on_record=done.append, worker=f"pid{os.getpid()}")
    except Stopped:
        pass
    return done


def run_task(kind: str, spec: dict, run_dir: str, seed: int, shots: int = 0, name: str = "", key: str = "",
             method: str = "", n_generated: int | None = None, cells: list | None = None, stop=None):
    """One task of a run's single map: kind "generator" (train_generator_task), "cell" (run_cell_task: a record)
    or "batch" (run_batch_task: a list of records). Named parameters only: executors pass `report` / `stop` to
    functions whose signature takes them."""
    if kind == "generator":
        return train_generator_task(spec, run_dir, seed, name, shots, key)
    if kind == "batch":
        return run_batch_task(spec, run_dir, cells, stop=stop)
    return run_cell_task(spec, run_dir, seed, shots, method, n_generated, stop=stop)


def batch_size(spec: ExperimentSpec, batch: int | None) -> int:
    """Cells per task: `batch` when given (1: single cells), else AUTO_BATCH on CUDA and 1 on a CPU."""
    if batch is not None:
        if int(batch) < 1:
            raise ValueError(f"batch must be at least 1 cell (1: no batching), got {batch}")
        return int(batch)
    return AUTO_BATCH if pick_device(spec.device).type == "cuda" else 1


def plan_cells(todo: list, batch: int) -> list[list]:
    """The cell tasks: single cells (batch 1), or the cells of one (shots, n_generated, method) in seed order,
    `batch` at a time. Cells keep their order within a batch; batches come in the order of their first cell."""
    if batch <= 1:
        return [[c] for c in todo]
    from core.fewshot.methods import trains_alone

    groups: dict[tuple, list] = {}
    for c in todo:          # a method that reads its classifier while training (fixmatch): one cell per task
        groups.setdefault(tuple(c) if trains_alone(c[3]) else (c[1], c[2], c[3]), []).append(c)
    return [g[i:i + batch] for g in groups.values() for i in range(0, len(g), batch)]


# ------------------------------------------------------------------------------------------------ runner

def records_csv(records: list[dict]) -> str:
    if not records:
        return ""
    keys = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def cell_key(r: dict) -> tuple:
    return (r["seed"], r["shots"], r.get("n_generated"), r["method"])


def _comparable(d: dict) -> dict:
    # no "tuned" (None) equals its absence: a run folder written before tuned settings existed resumes
    return {k: v for k, v in d.items() if k not in RESUMABLE and not (k == "tuned" and v is None)}


def run_experiment(spec: ExperimentSpec, out_dir, on_progress: Callable[[dict], None] | None = None,
                   stop: threading.Event | None = None, executor=None, batch: int | None = None) -> list[dict]:
    """Run every cell not yet in out_dir/results.json; returns all records (old and new) in cell order.

    on_progress gets {"done", "total", "skipped", "phase" ("generators" or "cells": what just finished),
    "generators_done", "generators_total", "cell": (seed, shots, n_generated, method) | None, "record" | None}
    (once per record, also for the records of a batch). Setting `stop` ends the run (a cell in progress is
    discarded; a batch keeps the cells it finished scoring when it runs in this process). executor: default
    the inline one (this thread); a failing task raises JobFailed, whatever the executor. batch: cells trained
    together (see the module docstring; None: batches on CUDA only)."""
    from core.device import set_deterministic

    set_deterministic(spec.device)     # CUDA in this process: records bit-identical run to run (workers do it too)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):                # one writer per run folder; released on success, error and stop
        return _run_locked(spec, out, on_progress, stop, executor, batch)


def _run_locked(spec: ExperimentSpec, out: Path, on_progress, stop, executor, batch) -> list[dict]:
    cfg_path, res_path = out / "config.json", out / "results.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if _comparable(old.get("spec", {})) != _comparable(spec.to_dict()):
            raise ValueError(f"{out} holds a run with different settings; resume it with the same settings "
                             f"(only {', '.join(RESUMABLE)} may change) or choose a new output folder")
    records = json.loads(res_path.read_text()) if res_path.exists() else []
    done = {cell_key(r) for r in records}
    atomic_write(cfg_path, json.dumps({"spec": spec.to_dict(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                       "torch": torch.__version__}, indent=2))
    cells = spec.cells()
    order = {c: i for i, c in enumerate(cells)}
    todo = [c for c in cells if c not in done]
    skipped = len(cells) - len(todo)
    k_batch = batch_size(spec, batch)
    spec_d = spec.to_dict()
    if todo:
        load_splits(spec)                                  # bad data -> a clear error before anything runs
        executor = executor or get_executor("inline")
        gens = plan_generators(spec, todo)
        # (task, the generator keys it needs saved first); seed by seed, that seed's generators first (a batch
        # counts as its last seed's; sorted() is stable, so cells keep their order).
        planned = sorted([({"kind": "generator", **g}, set()) for g in gens] +
                         [(_cell_task(group, k_batch), {g["key"] for g in plan_generators(spec, group)})
                          for group in plan_cells(todo, k_batch)],
                         key=lambda p: (p[0]["seed"], p[0]["kind"] != "generator"))
        tasks, waits_for = [tk for tk, _ in planned], [w for _, w in planned]
        gen_log: dict[str, dict] = {}
        log_path = out / "generators.json"
        saved_log = json.loads(log_path.read_text()) if log_path.exists() else {}

        def progress(phase: str, record: dict | None) -> None:
            if on_progress:
                on_progress({"done": sum(cell_key(r) in order for r in records), "total": len(cells),
                             "skipped": skipped, "phase": phase, "generators_done": len(gen_log),
                             "generators_total": len(gens), "cell": cell_key(record) if record else None,
                             "record": record})

        def finished(i: int, result: dict) -> None:
            if tasks[i]["kind"] == "generator":
                gen_log[result["key"]] = result
                if result.get("note"):
                    log.warning("%s: %s", out, result["note"])
                if not result["skipped"]:
                    saved_log[result["key"]] = result
                    atomic_write(log_path, json.dumps(saved_log, indent=1))
                progress("generators", None)
                return
            new = result if tasks[i]["kind"] == "batch" else [result]
            if not new:
                return
            records.extend(new)
            records.sort(key=lambda r: order.get(cell_key(r), len(order)))
            atomic_write(res_path, json.dumps(records, indent=1))
            atomic_write(out / "results.csv", records_csv(records))
            for record in new:
                progress("cells", record)

        try:
            executor.map(run_task, [{"spec": spec_d, "run_dir": str(out), **tk} for tk in tasks],
                         stop=stop, on_result=finished, ready=lambda i: waits_for[i] <= gen_log.keys())
        except Stopped:
            pass
        except JobFailed as exc:
            if not (exc.is_a("Stopped") and stop is not None and stop.is_set()):
                raise
    if records:
        atomic_write(out / "summary.csv", records_csv(summarize(records)))
    return records


def _cell_task(group: list, batch: int) -> dict:
    """A cell task without batching; with it, a batch task even for a lone cell (the batched arithmetic for every
    cell of the run). "seed": the last seed (whose generators it waits for)."""
    from core.fewshot.methods import trains_alone

    if batch <= 1 or trains_alone(group[0][3]):
        s, k, n, m = group[0]
        return {"kind": "cell", "seed": s, "shots": k, "n_generated": n, "method": m}
    return {"kind": "batch", "seed": max(c[0] for c in group), "cells": [list(c) for c in group]}


# ------------------------------------------------------------------------------------------- run folders

def list_runs(runs_dir) -> list[dict]:
    """Few-shot runs under runs_dir (folders holding config.json), newest first. A folder whose files cannot be
    read is listed with "damaged": the reason, not dropped and never a crash."""
    root = Path(runs_dir)
    runs = []
    for cfg in sorted(root.glob("*/config.json")) if root.is_dir() else []:
        entry = {"path": str(cfg.parent), "name": cfg.parent.name, "created": "", "dataset": "", "methods": [],
                 "shots": [], "seeds": 0, "n_records": 0, "complete": False, "damaged": None}
        try:
            meta = json.loads(cfg.read_text())
            spec = ExperimentSpec.from_dict(meta["spec"])
            res = cfg.parent / "results.json"
            n = len(json.loads(res.read_text())) if res.exists() else 0
            entry.update({"created": str(meta.get("created", "")), "dataset": spec.dataset, "methods": spec.methods,
                          "shots": spec.shots, "seeds": spec.seeds, "n_records": n, "complete": n >= len(spec.cells())})
        except (OSError, ValueError, KeyError, TypeError) as e:
            entry["damaged"] = f"{type(e).__name__}: {e}"[:200]
        runs.append(entry)
    return sorted(runs, key=lambda r: r["created"], reverse=True)


def load_run(path) -> dict:
    """{"spec": ExperimentSpec, "config": dict, "records": [...], "summary": summarize(records)}; a damaged
    folder raises ValueError naming the file."""
    path = Path(path)
    cfg = path / "config.json"
    if not cfg.exists():
        raise ValueError(f"{path} is not a few-shot run folder (no config.json)")
    try:
        meta = json.loads(cfg.read_text())
        res = path / "results.json"
        records = json.loads(res.read_text()) if res.exists() else []
        spec = ExperimentSpec.from_dict(meta["spec"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e}); delete it or run it again") from e
    return {"spec": spec, "config": meta, "records": records, "summary": summarize(records) if records else []}
