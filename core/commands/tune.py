"""`python -m core tune`: the equal tuning budget (core.fewshot.tuning) on the validation split; writes the raw
records (tuning.csv) and the tuned settings (tuned.json) that `python -m core fewshot --tuned FILE` reads.

Example: python -m core tune --dataset mnist5k --methods none classic mixup lsi --out docs/tuning/
Every method gets the same number of configurations (defaults + random draws from a fixed seed), 3 seeds,
shots 2 and 10, chosen by one rule written down before the runs (core/fewshot/tuning.py, RULE). The test set
is never read. An interrupted run resumes: run the same command again.
"""
from __future__ import annotations

import sys

from core.settings import dotted, flat, parse_value


def add_parser(sub) -> None:
    from core.fewshot.tuning import N_CONFIGS, RULE, SEEDS, SHOTS

    p = sub.add_parser("tune", help="tune every method with the same budget on the validation split",
                       description=__doc__.split("\n\n")[0] + f" Rule: {RULE}.")
    p.add_argument("--dataset", default="digits", help="training data: registry id or idx:PATH / npz:PATH")
    p.add_argument("--methods", nargs="+", required=True, help="methods to tune (each gets the same budget)")
    p.add_argument("--configs", type=int, default=N_CONFIGS, help=f"configurations per method (default {N_CONFIGS})")
    p.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds per configuration (default {SEEDS})")
    p.add_argument("--shots", type=int, nargs="+", default=list(SHOTS), help=f"shot counts (default {list(SHOTS)})")
    p.add_argument("--n-generated", default="50", help="generated / pseudo-labelled examples per class")
    p.add_argument("--validation", type=float, default=0.1, help="per-class share kept as the validation split")
    p.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe setting for every configuration (e.g. steps=300)")
    p.add_argument("--gen", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="generator setting for every configuration (generators are not tuned)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core; 0: inline)")
    p.add_argument("--out", default="docs/tuning", help="folder for tuning.csv and tuned.json")
    p.add_argument("--runs", default="runs/tuning", help="folder for the run folders (resumable; not committed)")


def run(args) -> int:
    from core.executor import executor_from_args
    from core.fewshot.tuning import tune

    if args.configs < 1 or args.seeds < 1:
        raise ValueError("--configs and --seeds must be >= 1")
    base = {"dataset": args.dataset, "test": None, "n_generated": [parse_value(args.n_generated)],
            "validation": args.validation, "recipe": flat(args.recipe, "--recipe"),
            "generators": dotted(args.gen, "--gen", "vae.latent_dim=50"), "device": args.device,
            "shots_tuning": args.shots, "seeds_tuning": args.seeds}
    with executor_from_args(args.workers, None) as executor:
        doc = tune(args.methods, args.out, base, n_configs=args.configs, executor=executor,
                   on_progress=lambda line: print(line, file=sys.stderr), runs_dir=args.runs)
    for method, c in doc["choice"].items():
        print(f"{method}: configuration {c['config']} (mean {c['mean']:.4f}; defaults {c['defaults_mean']:.4f})")
    print(f"wrote {args.out}/tuning.csv and {args.out}/tuned.json")
    return 0
