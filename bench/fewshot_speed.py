"""Seconds per cell of the default few-shot comparison on digits (issue 4 goal: < 5 min in all on a 2-core CPU).

    OMP_NUM_THREADS=1 python bench/fewshot_speed.py [--out DIR] [--threads 1]

Runs `none classic mixup isda lsi vae-interp` x shots 2 5 10 20 x 3 seeds, then prints the seconds per cell
by method (generator training included in the first cell that needs it, and shown separately), the ratio
to the baseline's cell time, the total, and the weighted-F1 table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.fewshot import ExperimentSpec, pivot, run_experiment, summarize  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one, so nothing is resumed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = ExperimentSpec(dataset="digits", shots=[2, 5, 10, 20],
                          methods=["none", "classic", "mixup", "isda", "lsi", "vae-interp"], seeds=3,
                          device=args.device)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fewshot-bench-"))
    t0 = time.perf_counter()
    records = run_experiment(spec, out)
    total = time.perf_counter() - t0
    by_method: dict[str, list[dict]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    base = sum(r["seconds"] for r in by_method["none"]) / len(by_method["none"])
    print(f"digits, {len(records)} cells, {args.threads} thread(s), device {records[0]['device']}, "
          f"torch {torch.__version__}")
    print(f"{'method':<12} {'s/cell':>7} {'of which generators':>20} {'x none':>7}")
    for m, rs in by_method.items():
        s = sum(r["seconds"] for r in rs) / len(rs)
        g = sum(r["generator_seconds"] for r in rs)
        print(f"{m:<12} {s:7.2f} {g:17.1f} s {s / base:7.1f}")
    print(f"total {total:.1f} s ({total / len(records):.2f} s per cell; goal < 300 s) -> "
          f"{'OK' if total < 300 else 'TOO SLOW'}")
    shots, methods, table = pivot(summarize(records))
    print("weighted F1, mean over 3 seeds")
    print("shots " + " ".join(f"{m:>10}" for m in methods))
    for k, row in zip(shots, table):
        print(f"{k:>5} " + " ".join(f"{v:10.3f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
