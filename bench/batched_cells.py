"""K single cells against one batch of K cells (core/fewshot/batched.py), the same inputs in the same run.

    flock /tmp/ll-bench.lock .venv/bin/python bench/batched_cells.py --device cpu --cells 4 [--dry-run]

Cells: digits, `--shots` per class (default 20), method `--method` (default none), seeds 0..K-1, the frozen
recipe (300 steps; --dry-run: 5 steps and K <= 2, to check the script). One torch thread; a 2-step
warm-up of both paths first. Prints the seconds of
K single cells (recipe.train_classifier, one after the other) and of one batch, the cells per second of each,
their ratio (batched / single: > 1 means batching pays) and the largest absolute difference of predicted
probabilities on 500 digits between the two. Last line:
    batched_cells device=... single_cell_per_s=... batched_cell_per_s=... ratio=... max_abs_diff=...
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.data import fewshot_split, load_dataset  # noqa: E402
from core.fewshot.batched import CellTraining, train_stacked  # noqa: E402
from core.fewshot.recipe import predict_proba, train_classifier  # noqa: E402
from core.fewshot.spec import Recipe  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--method", default="none")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    k = min(a.cells, 2) if a.dry_run else a.cells
    recipe = Recipe(steps=5) if a.dry_run else Recipe()
    data = load_dataset("digits")
    x, y = data.x.float().to(a.device), data.y.to(a.device)
    jobs = []
    for seed in range(k):
        idx, _ = fewshot_split(data.y, a.shots, seed)
        jobs.append(CellTraining(x[idx], torch.nn.functional.one_hot(y[idx], 10).float(), seed=seed,
                                 shots=a.shots, method=a.method, n_classes=10))
    x_eval = x[:500]

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    warm = Recipe(steps=2)                      # first-call costs (kernels, allocator) out of both timings
    train_classifier(jobs[0].x, jobs[0].y, warm, seed=0, shots=a.shots, method=a.method, n_classes=10,
                     device=a.device)
    train_stacked(jobs, warm, a.device)
    sync()
    t0 = time.perf_counter()
    singles = [train_classifier(j.x, j.y, recipe, seed=j.seed, shots=j.shots, method=j.method, n_classes=10,
                                device=a.device) for j in jobs]
    sync()
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = train_stacked(jobs, recipe, a.device)
    sync()
    t_batch = time.perf_counter() - t0
    diff = max((predict_proba(s, x_eval) - predict_proba(b, x_eval)).abs().max().item()
               for s, b in zip(singles, batched))
    single_rate, batch_rate = k / t_single, k / t_batch
    print(f"{k} cells, digits {a.shots} shots, {a.method}, {recipe.steps} steps on {a.device}: "
          f"single {t_single:.2f} s, batched {t_batch:.2f} s")
    print(f"batched_cells device={a.device} cells={k} single_cell_per_s={single_rate:.3f} "
          f"batched_cell_per_s={batch_rate:.3f} ratio={batch_rate / single_rate:.2f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    main()
