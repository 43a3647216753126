"""How long the 10-seed MNIST headline (docs/experiments/mnist.sh headline: 13 methods x 8 shot counts x 10 seeds =
1,040 cells and 100 generators) takes on 2 cores with this tree's code, projected from a sample of it (issue 13's
goal: <= 45 min), and whether the sample's records equal the committed ones.

    OMP_NUM_THREADS=1 .venv/bin/python bench/headline_projection.py --reference-tree DIR [--shots 2 10 100]

DIR: a `git worktree` at the commit that produced docs/records/mnist-headline.csv (5152f93). Both trees run the
headline's own settings on seed 0 at the sample's shot counts, one worker process and one torch thread each, at
the same time (so whatever else loads the machine slows both alike). Needs the MNIST test set
(../shared/data/mnist-test).

Projection: the reference tree's sample cells, against the committed records' `seconds` for the same cells, give
the machine's slowdown now (load, another CPU) -- `load`; this tree's cells against the reference's give the
code's speed-up per method. Each of the 1,040 committed cells then costs its committed seconds / the speed-up of
its method; the 100 generators cost what this tree's sample generators took (generators.json: each seed's pool
VAE and AAE, a multi-VAE per shot count at their mean) / load; the sum over two workers (1.98x one worker's
throughput, measured for this headline, README) is the projected wall time on the machine that produced the
committed records. The last line is machine-readable.
"""
from __future__ import annotations

import argparse
import csv
import json
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




def start_sample(tree: Path, shots: list[int]) -> tuple[subprocess.Popen, Path, float]:
    out = Path(tempfile.mkdtemp(prefix="headline-sample-"))
    cmd = [sys.executable, "-m", "core", "fewshot", "--dataset", "mnist5k", "--test", f"idx:{TEST}",
           "--threads", "1", "--workers", "1", "--out", str(out), "--shots", *map(str, shots), "--seeds", "1",
           "--n-generated", "50", "--gen", "vae.latent_dim=50", "--methods", *METHODS]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, out, time.perf_counter()


def finish_sample(proc: subprocess.Popen, out: Path, t0: float) -> tuple[float, list[dict], dict]:
    if proc.wait() != 0:
        raise RuntimeError(f"the sample run in {out} failed (exit {proc.returncode})")
    wall = time.perf_counter() - t0
    with open(out / "results.csv") as f:
        return wall, list(csv.DictReader(f)), json.loads((out / "generators.json").read_text())


def generator_seconds(trained: dict, seeds: int, shots: list[int]) -> float:
    """Seconds for the generators of `seeds` seeds at these shot counts, from one seed's sample: its pool VAE and
    AAE, and the mean multi-VAE (one per shot count)."""
    pool = sum(g["seconds"] for k, g in trained.items() if "-pool-" in k)
    multi = [g["seconds"] for k, g in trained.items() if k.startswith("multi-vae-")]
    return seeds * (pool + len(shots) * sum(multi) / len(multi))


def seconds_by_method(cells: list[dict]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in cells:
        out[r["method"]] += float(r["seconds"])
    return out


def key(r: dict) -> tuple[str, str, str]:
    return r["method"], r["shots"], r["seed"]


def same_as_committed(cells: list[dict], committed: list[dict]) -> tuple[int, int]:
    ref = {key(r): r["f1_weighted"] for r in committed}
    return sum(ref.get(key(r)) == r["f1_weighted"] for r in cells), len(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", type=int, nargs="+", default=[2, 10, 100])
    ap.add_argument("--reference-tree", type=Path, required=True)
    args = ap.parse_args()
    if not TEST.exists():
        sys.exit(f"needs the MNIST test set at {TEST}")
    with open(RECORDS) as f:
        committed = list(csv.DictReader(f))
    started = [start_sample(ROOT, args.shots), start_sample(args.reference_tree, args.shots)]
    (wall, cells, gens), (ref_wall, ref_cells, ref_gens) = (finish_sample(*s) for s in started)

    sample = {key(r) for r in cells}
    load = (sum(float(r["seconds"]) for r in ref_cells)
            / sum(float(r["seconds"]) for r in committed if key(r) in sample))
    this_m, ref_m = seconds_by_method(cells), seconds_by_method(ref_cells)
    speedup = {m: ref_m[m] / this_m[m] for m in METHODS}
    n_gen = generators_for(args.shots, 1)
    cells_s = sum(float(r["seconds"]) / speedup[r["method"]] for r in committed)
    gens_s = generator_seconds(gens, HEADLINE_SEEDS, HEADLINE_SHOTS) / load
    ref_gens_s = generator_seconds(ref_gens, HEADLINE_SEEDS, HEADLINE_SHOTS) / load
    minutes = (cells_s + gens_s) / TWO_WORKER_SPEEDUP / 60
    before = (sum(float(r["seconds"]) for r in committed) + ref_gens_s) / TWO_WORKER_SPEEDUP / 60
    same, n = same_as_committed(cells, committed)
    ref_same, _ = same_as_committed(ref_cells, committed)
    print(f"# sample: seed 0, shots {args.shots}: {n} cells + {n_gen} generators per tree, both trees at once "
          f"(wall {wall:.0f} s this, {ref_wall:.0f} s reference); machine slowdown against the committed run: "
          f"{load:.2f}x")
    print("# cell speed-up by method (reference / this): " + ", ".join(f"{m} {speedup[m]:.2f}" for m in METHODS))
    print(f"# F1 equal to the committed records: this {same}/{n}, reference {ref_same}/{n}")
    print(f"# projected headline on 2 workers: this {minutes:.1f} min (cells {cells_s / 60 / TWO_WORKER_SPEEDUP:.1f}, "
          f"generators {gens_s / 60 / TWO_WORKER_SPEEDUP:.1f}); the reference code {before:.1f} min")
    print(f"headline_projection minutes={minutes:.1f} reference_minutes={before:.1f} speedup={before / minutes:.2f} "
          f"identical={same}/{n} load={load:.2f} goal_min={GOAL_MIN:.0f}")


if __name__ == "__main__":
    main()
