"""K single cells against one batch of the same K cells (core/fewshot/batched.py), measured in the same run.

    flock /tmp/ll-bench.lock .venv/bin/python bench/batched_cells.py [--device cpu|cuda] [--cells 4] [--dry-run]

Cells: the headline's shape — mnist5k shots (`--shots`, default 5 per class), method `--method` (default none),
seeds 0..K-1, the frozen recipe (300 steps) — each scored on the official 10k MNIST test set when it is there
(tests/conftest.py's folder), else on 2,000 mnist5k images. `--dry-run`: digits, 5 steps, K <= 2 (checks the
script in seconds). One torch thread on the CPU. After a warm-up of both paths, `--repeats` rounds (default 2)
each time the K single cells (recipe.fit_classifier, one after another) then one batch of K, alternating so that
other load on the machine hits both alike; the faster round of each counts. Prints both times, cells per second,
their ratio (batched / single: > 1 means batching pays) and the largest difference of predicted probabilities
and of weighted F1 between the two paths. Last line:
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
from core.fewshot.batched import fit_batch  # noqa: E402
from core.fewshot.recipe import MethodRun, TrainingData, fit_classifier, predict_proba, scores  # noqa: E402
from core.fewshot.spec import Recipe  # noqa: E402

MNIST_TEST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist-test"


def evaluation_set(dry_run: bool, data):
    if dry_run:
        return data.x[:400], data.y[:400], "400 digits"
    if (MNIST_TEST / "t10k-images-idx3-ubyte.gz").is_file():
        test = load_dataset(f"idx:{MNIST_TEST}", train=False)
        return test.x, test.y, "the 10k MNIST test set"
    return data.x[-2000:], data.y[-2000:], "2,000 mnist5k images (no MNIST test set here)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cells", type=int, default=4, help="K: cells in the batch (seeds 0..K-1)")
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--method", default="none")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="digits, 5 steps, K <= 2: checks the script")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    torch.set_num_threads(1)
    k = min(a.cells, 2) if a.dry_run else a.cells
    recipe = Recipe(steps=5) if a.dry_run else Recipe()
    data = load_dataset("digits" if a.dry_run else "mnist5k")
    x_eval, y_eval, eval_name = evaluation_set(a.dry_run, data)
    x_eval = x_eval.to(a.device)
    items = []
    for seed in range(k):
        idx, _ = fewshot_split(data.y, a.shots, seed)
        y_soft = torch.nn.functional.one_hot(data.y[idx], data.n_classes).float()
        items.append((TrainingData(data.x[idx].to(a.device), y_soft.to(a.device)), MethodRun(seed, a.shots, a.method)))

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - t0, out

    warm = Recipe(steps=2)                      # first-call costs (kernels, vmap, allocator) out of both timings
    fit_classifier(items[0][0], warm, items[0][1], device=a.device)
    fit_batch(items, warm, device=a.device)
    t_single = t_batch = float("inf")
    for _ in range(max(1, a.repeats)):
        t, singles = timed(lambda: [fit_classifier(d, recipe, r, device=a.device) for d, r in items])
        t_single = min(t_single, t)
        t, batched = timed(lambda: fit_batch(items, recipe, device=a.device))
        t_batch = min(t_batch, t)
    p_single = [predict_proba(m, x_eval).cpu() for m in singles]
    p_batch = [predict_proba(m, x_eval).cpu() for m in batched]
    diff = max((p - q).abs().max().item() for p, q in zip(p_single, p_batch))
    f1 = [(scores(y_eval, p.argmax(1))["f1_weighted"], scores(y_eval, q.argmax(1))["f1_weighted"])
          for p, q in zip(p_single, p_batch)]
    f1_diff = max(abs(s - b) for s, b in f1)
    single_rate, batch_rate = k / t_single, k / t_batch
    print(f"{k} cells ({'digits' if a.dry_run else 'mnist5k'}, {a.shots} shots, {a.method}, {recipe.steps} steps) on "
          f"{a.device}, scored on {eval_name}: {k} single cells {t_single:.2f} s, one batch {t_batch:.2f} s "
          f"(best of {max(1, a.repeats)}); weighted F1 single / batched: "
          + ", ".join(f"{s:.4f}/{b:.4f}" for s, b in f1) + f" (largest difference {f1_diff:.4f})")
    print(f"batched_cells device={a.device} cells={k} single_cell_per_s={single_rate:.3f} "
          f"batched_cell_per_s={batch_rate:.3f} ratio={batch_rate / single_rate:.2f} max_abs_diff={diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
