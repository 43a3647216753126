"""`python -m core fewshot`: compare augmentations in the few-shot protocol and write a run folder.

Example: python -m core fewshot --dataset mnist5k --test idx:../shared/data/mnist-test --shots 2 5 \
             --methods none lsi --seeds 3 --out runs/fewshot-mnist
An interrupted run resumes: run the same command again and finished cells are skipped.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("fewshot", help="few-shot comparison of augmentation methods (method x shots x seed)",
                       description=__doc__.split("\n\n")[0] + " Methods: none, classic, cutout, mixup, cutmix, "
                       "label-smoothing, isda, tta, lsi, vae-noise, vae-interp, vae-extrap, vae-interp-noise, "
                       "vae-extrap-noise, vae-prior-gc, multi-vae, and combinations like classic+lsi.")
    p.add_argument("--dataset", default="digits", help="training data: registry id or idx:PATH / npz:PATH")
    p.add_argument("--test", default=None, help="test set, e.g. idx:../shared/data/mnist-test "
                                                "(default: a held-out share of --dataset)")
    p.add_argument("--shots", type=int, nargs="+", default=[2, 5, 10, 20], help="labelled examples per class")
    p.add_argument("--methods", nargs="+", default=["none", "classic", "mixup", "isda", "lsi", "vae-interp"])
    p.add_argument("--seeds", type=int, default=3, help="repeats per cell (seeds 0..N-1)")
    p.add_argument("--steps", type=int, default=300, help="classifier optimiser steps (same for every method)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-generated", type=int, default=50, help="generated examples per class (latent methods)")
    p.add_argument("--gen-latent-dim", type=int, default=16, help="VAE latent size (Bonn slides: 50)")
    p.add_argument("--gen-aae-latent-dim", type=int, default=16,
                   help="AAE-uniform (lsi) latent size; its adversarial training collapsed at 50 on mnist5k")
    p.add_argument("--gen-beta", type=float, default=0.5)
    p.add_argument("--gen-steps", type=int, default=2000, help="generator training budget (optimiser steps)")
    p.add_argument("--gen-hidden", type=int, default=256)
    p.add_argument("--gen-data", default="pool", choices=["pool", "labelled"],
                   help="train the generators on the unlabelled pool (all training inputs) or only the shots")
    p.add_argument("--mix-in", type=float, default=0.0, help="Multi-VAE: share of other classes (slides: 0.2)")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="augmentation parameter, e.g. mixup.alpha=0.4 or isda.lambda_0=0.25 (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--out", default=None, help="run folder (default runs/fewshot-<time>)")


def _params(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--param {item!r}: write METHOD.NAME=VALUE, e.g. mixup.alpha=0.4")
        key, value = item.split("=", 1)
        method, name = key.split(".", 1)
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(method, {})[name] = parsed
    return out


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from core.fewshot import ExperimentSpec, pivot, run_experiment, summarize

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = ExperimentSpec(dataset=args.dataset, test=args.test, shots=args.shots, methods=args.methods,
                          seeds=args.seeds, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          n_generated=args.n_generated, device=args.device, params=_params(args.param),
                          generator={"latent_dim": args.gen_latent_dim, "aae_latent_dim": args.gen_aae_latent_dim, "beta": args.gen_beta,
                                     "steps": args.gen_steps, "hidden": args.gen_hidden, "data": args.gen_data,
                                     "mix_in": args.mix_in})
    out = Path(args.out or f"runs/fewshot-{time.strftime('%Y%m%d-%H%M%S')}")
    bar = tqdm(total=len(spec.cells()), unit="cell", file=sys.stderr, dynamic_ncols=True)

    def on_progress(info):
        if bar.n == 0 and info["skipped"]:
            bar.update(info["skipped"])
        r = info["record"]
        bar.set_postfix_str(f"{r['method']} k={r['shots']} s={r['seed']} F1w={r['f1_weighted']:.3f} "
                            f"{r['seconds']:.1f}s")
        bar.update(1)

    t0 = time.perf_counter()
    records = run_experiment(spec, out, on_progress=on_progress)
    bar.close()
    rows = summarize(records)
    shots, methods, table = pivot(rows)
    _, _, cis = pivot(rows, "ci95")
    print(f"weighted F1 (mean ± 95% CI over seeds) — {out}")
    print("shots  " + "  ".join(f"{m:>18}" for m in methods))
    for k, vals, ci in zip(shots, table, cis):
        print(f"{k:>5}  " + "  ".join(f"{v:.3f} ± {c:.3f}".rjust(18) if c == c else f"{v:.3f}".rjust(18)
                                     for v, c in zip(vals, ci)))
    cell_s = [r["seconds"] for r in records]
    print(f"{len(records)} cells, {sum(cell_s) / max(len(cell_s), 1):.2f} s per cell (mean), "
          f"{time.perf_counter() - t0:.0f} s this invocation; results in {out}/results.csv and summary.csv")
    return 0
