"""How long the 10-seed MNIST headline (docs/experiments/mnist.sh headline: 13 methods x 8 shot counts x 10 seeds =
1,040 cells and 100 generators) takes on this machine, projected from a sample of it (issue 13's goal: <= 45 min
on 2 cores), and whether the sample's records equal the committed ones.

    OMP_NUM_THREADS=1 .venv/bin/python bench/headline_projection.py [--shots 2 10 100] [--reference-tree DIR]

Runs the headline's own settings on one seed (seed 0) at the sample's shot counts with one worker process and one
torch thread, in this tree and (with --reference-tree, e.g. a `git worktree` at the commit that produced
docs/records/mnist-headline.csv) in that tree too, one after the other in the same run: the ratio of the two is the
speed-up of the code, free of the machine's speed. Needs the real MNIST test set (../shared/data/mnist-test).

Projection: each of the 1,040 cells costs what its method cost per cell in the sample, scaled over shot counts by
the committed records' own profile (docs/records/mnist-headline.csv `seconds`: cells at 100 shots cost ~1.9x those
at 2); the generators cost (sample wall time - its cells' time) per generator, times the headline's 100; two
workers on 2 cores give 1.98x one worker's throughput (measured for this headline, README). The last line is
machine-readable.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = ROOT.parent / "shared" / "data" / "mnist-test"
RECORDS = ROOT / "docs" / "records" / "mnist-headline.csv"
METHODS = ["none", "classic", "mixup", "cutmix", "isda", "lsi", "lsi-online", "vae-noise", "vae-interp-noise",
           "vae-extrap-noise", "multi-vae", "distill", "latent-probe"]
HEADLINE_SHOTS = [2, 3, 4, 5, 10, 20, 50, 100]
HEADLINE_SEEDS = 10
TWO_WORKER_SPEEDUP = 1.98
GOAL_MIN = 45.0


def generators_for(shots: list[int], seeds: int) -> int:
    """The pool VAE and AAE of each seed, and a multi-VAE per (seed, shot count)."""
    return seeds * (2 + len(shots))


def run_sample(tree: Path, shots: list[int]) -> tuple[float, list[dict]]:
    out = Path(tempfile.mkdtemp(prefix="headline-sample-"))
    cmd = [sys.executable, "-m", "core", "fewshot", "--dataset", "mnist5k", "--test", f"idx:{TEST}",
           "--threads", "1", "--workers", "1", "--out", str(out), "--shots", *map(str, shots), "--seeds", "1",
           "--n-generated", "50", "--gen", "vae.latent_dim=50", "--methods", *METHODS]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(out / "results.csv") as f:
        return wall, list(csv.DictReader(f))


def project(wall: float, cells: list[dict], shots: list[int], committed: list[dict]) -> float:
    """Projected minutes of the full headline with two workers (see the module docstring)."""
    per_method = defaultdict(list)
    for r in cells:
        per_method[r["method"]].append(float(r["seconds"]))
    profile = defaultdict(dict)                           # method -> shots -> mean committed seconds
    for r in committed:
        profile[r["method"]].setdefault(int(r["shots"]), []).append(float(r["seconds"]))
    profile = {m: {s: sum(v) / len(v) for s, v in d.items()} for m, d in profile.items()}
    total = 0.0
    for m in METHODS:
        scale = (sum(per_method[m]) / len(per_method[m])) / (sum(profile[m][s] for s in shots) / len(shots))
        total += sum(profile[m][s] * scale for s in HEADLINE_SHOTS) * HEADLINE_SEEDS
    gen_each = max(0.0, wall - sum(float(r["seconds"]) for r in cells)) / generators_for(shots, 1)
    total += gen_each * generators_for(HEADLINE_SHOTS, HEADLINE_SEEDS)
    return total / TWO_WORKER_SPEEDUP / 60


def same_as_committed(cells: list[dict], committed: list[dict]) -> tuple[int, int]:
    ref = {(r["method"], r["shots"], r["seed"]): r["f1_weighted"] for r in committed}
    same = sum(ref.get((r["method"], r["shots"], r["seed"])) == r["f1_weighted"] for r in cells)
    return same, len(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", type=int, nargs="+", default=[2, 10, 100])
    ap.add_argument("--reference-tree", type=Path, default=None)
    args = ap.parse_args()
    if not TEST.exists():
        sys.exit(f"needs the MNIST test set at {TEST}")
    with open(RECORDS) as f:
        committed = list(csv.DictReader(f))
    rows = []
    for name, tree in (("this tree", ROOT), ("reference", args.reference_tree)):
        if tree is None:
            continue
        wall, cells = run_sample(tree, args.shots)
        minutes = project(wall, cells, args.shots, committed)
        same, n = same_as_committed(cells, committed)
        print(f"# {name} ({tree}): sample of {n} cells + {generators_for(args.shots, 1)} generators in {wall:.0f} s "
              f"(one worker); cells' F1 equal to the committed records: {same}/{n}; projected headline on 2 workers: "
              f"{minutes:.1f} min")
        rows.append((name, minutes, same, n))
    line = f"headline_projection machine_cpus={os.cpu_count()} minutes={rows[0][1]:.1f} identical={rows[0][2]}/{rows[0][3]}"
    if len(rows) == 2:
        line += f" reference_minutes={rows[1][1]:.1f} speedup={rows[1][1] / rows[0][1]:.2f}"
    print(line + f" goal_min={GOAL_MIN:.0f}")


if __name__ == "__main__":
    main()
