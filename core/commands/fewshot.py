"""`python -m core fewshot`: compare augmentations in the few-shot protocol and write a run folder.

Example: python -m core fewshot --dataset mnist5k --test idx:../shared/data/mnist-test --shots 2 5 \
             --methods none classic lsi-online distill --seeds 3 --out runs/fewshot-mnist
An interrupted run resumes: run the same command again and finished cells are skipped.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from core.settings import SettingError, dotted, flat, parse_value


def add_parser(sub) -> None:
    from core.augment import AUGMENTATIONS
    from core.fewshot.generators import settings_table

    gens = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in s.items()) for name, s in settings_table().items())
    p = sub.add_parser("fewshot", help="few-shot comparison of augmentation methods (method x shots x seed)",
                       description=__doc__.split("\n\n")[0] + " Methods: " + ", ".join(AUGMENTATIONS) +
                       ", and combinations like classic+lsi. Generator settings (--gen NAME.KEY=VALUE): " + gens)
    p.add_argument("--dataset", default="digits", help="training data: registry id or idx:PATH / npz:PATH / csv:PATH:LABEL_COLUMN / imagefolder:PATH[:grey|rgb[:SIZE]] / upload:SHA256")
    p.add_argument("--test", default=None, help="test set, e.g. idx:../shared/data/mnist-test "
                                                "(default: a held-out share of --dataset)")
    p.add_argument("--evaluate-on", default="test", choices=["test", "validation"],
                   help="score on the test set, or on the validation split (to choose settings; never tune on test)")
    p.add_argument("--shots", type=int, nargs="+", default=[2, 5, 10, 20], help="labelled examples per class")
    p.add_argument("--methods", nargs="+", default=["none", "classic", "mixup", "isda", "lsi", "vae-interp"])
    p.add_argument("--seeds", type=int, default=3, help="repeats per cell (seeds 0..N-1)")
    p.add_argument("--n-generated", nargs="+", default=["50"],
                   help="generated (or pseudo-labelled) examples per class; several values sweep; 'shots' = k")
    p.add_argument("--generated-only", action="store_true",
                   help="generating methods train on their generated examples only (Bonn 'only generated data')")
    p.add_argument("--gen-data", default="pool", choices=["pool", "labelled"],
                   help="train the pool generators on the unlabelled pool or only on the shots")
    p.add_argument("--validation", type=float, default=0.1, help="per-class share kept as the validation split")
    p.add_argument("--steps", type=int, default=None, help="classifier optimiser steps (recipe default 300)")
    p.add_argument("--batch-size", type=int, default=None, help="real examples per batch (recipe default 64)")
    p.add_argument("--gen-ratio", type=float, default=None,
                   help="generated examples per real example in each batch (recipe default 1.0)")
    p.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                   help="classifier recipe setting, e.g. lr=0.002, weight_decay=0.05, dropout=0.5, schedule=cosine")
    p.add_argument("--gen", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="generator setting, e.g. vae.latent_dim=50, multi-vae.mix_in=0.2, vae.beta_norm=true")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="augmentation parameter, e.g. mixup.alpha=0.4 or isda.lambda_0=0.25 (repeatable)")
    p.add_argument("--tuned", default=None, metavar="FILE",
                   help="tuned settings per method (docs/tuning/tuned.json, from `python -m core tune`): each method "
                        "with an entry runs its tuned parameters and gen_ratio; the others run their defaults, and "
                        "records and tables say which")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes running cells side by side, one torch thread each (default: one per "
                        "core; 0: everything in this process, one cell after another)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the cells on this Ray cluster (HOST:PORT; or set LATENT_LAB_RAY_ADDRESS); the run "
                        "folder must be on a filesystem every node sees")
    p.add_argument("--batch", type=int, default=None, metavar="K",
                   help="train up to K cells of one (shots, n_generated, method) as one stacked model (1: every "
                        "cell alone). Default: 32 on CUDA; on a CPU every cell alone, where a batch is no faster "
                        "(bench/batched_cells.py) and single cells keep the records bit-identical")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads with --workers 0 (default 1, as every worker runs: a result's last bits "
                        "depend on the thread count; 0: leave torch's default)")
    p.add_argument("--deterministic", action="store_true",
                   help="pin torch's CPU kernel path (ATEN_CPU_CAPABILITY=avx2, also for the workers) and its "
                        "deterministic algorithms, so machines with AVX2 or AVX-512 give the same records where torch "
                        "allows (or set LATENT_LAB_DETERMINISTIC=1); every record names its kernel path")
    p.add_argument("--out", default=None, help="run folder (default runs/fewshot-<time>-<random>)")


def spec_from_args(args):
    from core.fewshot import ExperimentSpec

    recipe = flat(args.recipe, "--recipe")
    for key in ("steps", "batch_size", "gen_ratio"):
        if getattr(args, key) is not None:
            if key in recipe:   # one would silently win, and the other would never be checked
                flag = "--" + key.replace("_", "-")
                raise SettingError(f"{key} is given twice: {flag} {getattr(args, key)} and --recipe "
                                   f"{key}={recipe[key]}; give one")
            recipe[key] = getattr(args, key)
    n_generated = [parse_value(n) for n in args.n_generated]          # numbers, or "shots"
    tuned = None
    if getattr(args, "tuned", None):
        from core.fewshot.tuning import load_tuned

        tuned = load_tuned(args.tuned)
    return ExperimentSpec(dataset=args.dataset, test=args.test, evaluate_on=args.evaluate_on, shots=args.shots,
                          methods=args.methods, seeds=args.seeds, n_generated=n_generated,
                          generated_only=args.generated_only, gen_data=args.gen_data, validation=args.validation,
                          recipe=recipe, generators=dotted(args.gen, "--gen", "vae.latent_dim=50"),
                          params=dotted(args.param, "--param", "mixup.alpha=0.4"), device=args.device, tuned=tuned)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from core.executor import JobFailed, executor_from_args
    from core.fewshot import pivot, run_experiment, summarize
    from core.fewshot.kernels import FLAG, pin

    if args.deterministic or os.environ.get(FLAG) == "1":
        kernels = pin()     # before this process's first kernel and before any worker starts
        print(f"kernels pinned: {kernels['cpu_capability']}, deterministic algorithms", file=sys.stderr)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 (this process) or more, got {args.workers}")
    try:
        spec = spec_from_args(args)    # every setting's type and range, before any work
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/fewshot-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
    bar = tqdm(total=len(spec.cells()), unit="cell", file=sys.stderr, dynamic_ncols=True)

    def on_progress(info):
        if info["phase"] == "generators":
            bar.n = info["done"]
            bar.set_postfix_str(f"generators {info['generators_done']}/{info['generators_total']}")
            bar.refresh()
            return
        r = info["record"]
        bar.n = info["done"]
        bar.set_postfix_str(f"{r['method']} k={r['shots']} s={r['seed']} F1w={r['f1_weighted']:.3f} "
                            f"{r['seconds']:.1f}s")
        bar.refresh()

    t0 = time.perf_counter()
    with executor_from_args(args.workers, args.ray) as executor:
        if executor.kind != "inline":
            print(f"{executor.kind} executor, {executor.workers} workers; run folder {out}", file=sys.stderr)
        try:
            records = run_experiment(spec, out, on_progress=on_progress, executor=executor, batch=args.batch)
        except JobFailed as exc:
            bar.close()
            if not exc.is_a("ValueError"):
                print(exc.traceback_text, file=sys.stderr)  # a bug or a lost worker: show where
            print(f"the finished cells are kept in {out}; run the same command again to resume", file=sys.stderr)
            raise
        except BaseException:       # e.g. the run folder is in use: the message below the bar, on its own line
            bar.close()
            raise
    bar.close()
    rows = summarize(records)
    shots, methods, table = pivot(rows)
    _, _, cis = pivot(rows, "ci95")
    print(f"weighted F1 (mean ± 95% CI over seeds) on {records[0]['evaluated_on'] if records else '-'} — {out}")
    print("shots  " + "  ".join(f"{m:>18}" for m in methods))
    for k, vals, ci in zip(shots, table, cis):
        print(f"{k:>5}  " + "  ".join(f"{v:.3f} ± {c:.3f}".rjust(18) if c == c else f"{v:.3f}".rjust(18)
                                     for v, c in zip(vals, ci)))
    cell_s = [r["seconds"] for r in records]
    print(f"{len(records)} cells, {sum(cell_s) / max(len(cell_s), 1):.2f} s per cell (mean), "
          f"{time.perf_counter() - t0:.0f} s this invocation; results in {out}/results.csv and summary.csv")
    return 0
