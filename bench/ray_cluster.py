"""The default digits comparison on a two-node Ray cluster against the `local` backend (issue 8 goal: records
bit-identical). The cluster is a head and one worker started with `ray start`, one CPU each, in a network
namespace that has only the loopback interface (core.executor.loopback; needs root and requirements-ray.txt).

    flock /tmp/ll-bench.lock .venv/bin/python bench/ray_cluster.py [--seeds 3]

Runs `none classic mixup isda lsi vae-interp` x shots 2 5 10 20 x seeds (72 cells at 3 seeds, generators at
their full 2,000 steps) on the cluster, then on a local executor with 2 workers, in fresh run folders; prints
both wall times, their ratio (the reference: local) and whether the records are bit-identical.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.executor import get_executor, loopback, probe  # noqa: E402
from core.fewshot import TIMING_KEYS, ExperimentSpec, run_experiment  # noqa: E402

DRIVER = textwrap.dedent("""\
    import json, os, time
    import ray
    from core.executor import get_executor, probe
    from core.fewshot import ExperimentSpec, run_experiment

    out = os.environ["OUT"]
    ex = get_executor("ray", address="127.0.0.1:6379")
    for h in [ex.submit(probe.whoami) for _ in range(ex.workers)]:
        h.result(300)                                       # workers up before the clock starts, as for local
    t0 = time.perf_counter()
    records = run_experiment(ExperimentSpec(**json.loads(os.environ["SPEC"])), os.path.join(out, "run"), executor=ex)
    report = {"seconds": time.perf_counter() - t0, "records": records, "workers": ex.workers,
              "nodes": sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])}
    ex.shutdown()
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f)
""")


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    why = loopback.unavailable()
    if why:
        print(f"ray_cluster: cannot run here: {why}")
        return 2
    spec = dict(dataset="digits", shots=[2, 5, 10, 20], methods=["none", "classic", "mixup", "isda", "lsi", "vae-interp"],
                seeds=args.seeds)
    out = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    proc = loopback.run_driver(DRIVER, out, {"SPEC": json.dumps(spec)}, timeout=1800)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], loopback.node_logs(out), sep="\n")
        return 1
    ray = json.loads((out / "report.json").read_text())
    print(f"ray, 2 nodes ({', '.join(ray['nodes'])}), {ray['workers']} workers: {ray['seconds']:7.1f} s "
          f"({len(ray['records'])} cells)", flush=True)
    with get_executor("local", workers=2) as ex:
        for h in [ex.submit(probe.whoami) for _ in range(ex.workers)]:
            h.result(300)
        t0 = time.perf_counter()
        local = run_experiment(ExperimentSpec(**spec), out / "local", executor=ex)
        t_local = time.perf_counter() - t0
    same = comparable(ray["records"]) == comparable(local)
    print(f"local, 2 workers:  {t_local:7.1f} s")
    print(f"ray_cluster cells={len(local)} ray_s={ray['seconds']:.1f} local_s={t_local:.1f} "
          f"ray/local={ray['seconds'] / t_local:.2f} identical={same}")
    shutil.rmtree(out, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
