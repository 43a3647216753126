"""Workers = cores against one worker on the default few-shot comparison on digits (issue 8 goal: >= 1.8x on
a 2-core machine, records bit-identical).

    flock /tmp/ll-bench.lock .venv/bin/python bench/fewshot_speed.py [--workers N] [--seeds 3] [--ray ADDRESS]

Runs `none classic mixup isda lsi vae-interp` x shots 2 5 10 20 x 3 seeds (72 cells, 6 generators) twice in
fresh run folders: once on a local executor with one worker process, once with N (default: one per core);
both with one torch thread per worker. Prints both wall times, the ratio, whether the records are
bit-identical (all keys but the timing keys), the seconds per cell by method and the weighted-F1 table.
With --ray ADDRESS the second run goes to that cluster instead of N local workers.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.executor import default_workers, get_executor, probe  # noqa: E402
from core.fewshot import TIMING_KEYS, ExperimentSpec, pivot, run_experiment, summarize  # noqa: E402

GOAL = 1.8


def timed_run(spec: ExperimentSpec, executor) -> tuple[float, list[dict]]:
    out = Path(tempfile.mkdtemp(prefix="fewshot-bench-"))  # fresh: nothing is resumed, generators retrained
    t0 = time.perf_counter()
    records = run_experiment(spec, out, executor=executor)
    return time.perf_counter() - t0, records


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=default_workers(), help="workers of the second run (default: cores)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ray", default=None, metavar="ADDRESS", help="run the second pass on this Ray cluster")
    args = ap.parse_args()
    spec = ExperimentSpec(dataset="digits", shots=[2, 5, 10, 20],
                          methods=["none", "classic", "mixup", "isda", "lsi", "vae-interp"], seeds=args.seeds)
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({default_workers()} usable), "
          f"{platform.python_version()}, torch {torch.__version__}, "
          f"cuda {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    # Each executor's workers start (and import torch) before its timed run: the figures compare the runs.
    with get_executor("local", workers=1) as one:
        one.submit(probe.whoami).result(300)
        t_one, r_one = timed_run(spec, one)
    print(f"1 worker:  {t_one:7.1f} s  ({len(r_one)} cells; load average after: {os.getloadavg()[0]:.2f})",
          flush=True)
    kind = "ray" if args.ray else "local"
    with get_executor(kind, workers=None if args.ray else args.workers, address=args.ray) as many:
        for h in [many.submit(probe.whoami) for _ in range(many.workers)]:
            h.result(300)
        t_many, r_many = timed_run(spec, many)
        n = many.workers
    same = comparable(r_one) == comparable(r_many)
    ratio = t_one / t_many
    print(f"{n} workers ({kind}): {t_many:7.1f} s  (load average after: {os.getloadavg()[0]:.2f}; other "
          "processes on the machine take cores from the workers, so the ratio is only meaningful on an idle one)")
    print(f"speed-up {ratio:.2f}x (goal >= {GOAL}x on 2 cores) -> {'OK' if ratio >= GOAL else 'BELOW GOAL'}; "
          f"records bit-identical: {'yes' if same else 'NO'}")
    by_method: dict[str, list[float]] = {}
    for r in r_one:
        by_method.setdefault(r["method"], []).append(r["seconds"])
    base = sum(by_method["none"]) / len(by_method["none"])
    print(f"{'method':<12} {'s/cell (1 worker)':>18} {'x none':>7}")
    for m, secs in by_method.items():
        s = sum(secs) / len(secs)
        print(f"{m:<12} {s:18.2f} {s / base:7.1f}")
    shots, methods, table = pivot(summarize(r_one))
    print(f"weighted F1, mean over {args.seeds} seeds")
    print("shots " + " ".join(f"{m:>10}" for m in methods))
    for k, row in zip(shots, table):
        print(f"{k:>5} " + " ".join(f"{v:10.3f}" for v in row))
    print(f"fewshot_speed one_s={t_one:.1f} many_s={t_many:.1f} workers={n} ratio={ratio:.2f} identical={same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
