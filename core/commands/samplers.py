"""`python -m core samplers --checkpoints DIR ... --out docs/records/samplers.csv`: measure every (model x sampler)
against the holes and against held-out real images (core.sampler_table), write one CSV row per (model, sampler,
seed) and print the mean [95 % t-interval over the seeds] of every figure.

    OMP_NUM_THREADS=1 python -m core samplers --checkpoints checkpoints/mnist5k-*-z2 checkpoints/mnist5k-*-z16 \\
        --samplers prior ex-post knn-interpolate --seeds 5 --out docs/records/samplers.csv
"""
from __future__ import annotations

import csv
import sys
import time


def add_parser(sub) -> None:
    from core.sampler_table import DEFAULT_HELD_OUT, DEFAULT_SAMPLERS
    from core.samplers import list_samplers

    p = sub.add_parser("samplers", help="measure samplers (prior, ex-post, kNN, ...) against the holes; CSV records",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True, help="checkpoint folders")
    p.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS), choices=list_samplers())
    p.add_argument("--seeds", type=int, default=5, help="sampling seeds 0 .. S-1 (default 5)")
    p.add_argument("--n", type=int, default=2000, help="samples per (model, sampler, seed); as many real images")
    p.add_argument("--held-out", default=None,
                   help="real images the models never saw (a core.data spec; idx: folders give their t10k split). "
                        f"Default: idx:{DEFAULT_HELD_OUT} when it exists, else the training data itself (then NOT "
                        "held out: the records say so)")
    p.add_argument("--no-real-row", action="store_true", help="skip the reference rows (held-out-real, held-out-recon)")
    p.add_argument("--out", default=None, help="CSV of raw records (one row per model, sampler, seed)")


def run(args) -> int:
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.sampler_table import NOT_HELD_OUT, format_table, held_out_images, measure_samplers, summarise

    if args.seeds < 1 or args.n < 10:
        raise ValueError("--seeds must be >= 1 and --n >= 10")
    records, datasets, fields = [], {}, None
    out = open(args.out, "w", newline="") if args.out else None  # noqa: SIM115 (rows are written as they come)
    t0 = time.perf_counter()
    try:
        for path in args.checkpoints:
            ckpt = load_checkpoint(path, device="cpu")
            spec = ckpt.meta["dataset"]
            if spec not in datasets:
                train = load_dataset(spec)
                datasets[spec] = (train, *held_out_images(args.held_out, train))
                if NOT_HELD_OUT in datasets[spec][2]:
                    print(f"note: no held-out set given and {DEFAULT_HELD_OUT} is missing: comparing with the "
                          f"training data {spec} itself (not held out; FD and recall are then optimistic)",
                          file=sys.stderr)
            train, held_x, held_name = datasets[spec]
            print(f"{ckpt.name}: {len(train)} training images of {spec}, held out: {held_name}", file=sys.stderr)
            for r in measure_samplers(ckpt.model, train, held_x, args.samplers, range(args.seeds), args.n,
                                      model_name=ckpt.name, held_out=held_name, include_real=not args.no_real_row):
                records.append(r)
                if out is not None:
                    if fields is None:
                        fields = list(r)
                        writer = csv.DictWriter(out, fieldnames=fields)
                        writer.writeheader()
                    writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
                    out.flush()
    finally:
        if out is not None:
            out.close()
    print(format_table(summarise(records)))
    print(f"\n{len(records)} records in {time.perf_counter() - t0:.0f} s"
          + (f", written to {args.out}" if args.out else "")
          + ". FD is the classifier-feature FD (mnist5k-trained CNN features), not Inception-FID.")
    return 0
