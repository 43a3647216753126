"""`python -m core train`: train one model on one dataset and save it as a checkpoint folder.

A thin shell over core.training_job (`train_task`, `save_trained`), which the app's Train page calls too.
The model flags are built from the registered kinds' config dataclasses (core.config_flags): a new model
kind's fields appear here as flags without any change to this file. The training runs in this process
(the default), in a worker process (`--executor local`) or on a Ray cluster (`--ray ADDRESS`).
"""

from __future__ import annotations

import sys

TRAIN_FLAG_SKIP = ("amp",)  # bf16 on GPU stays on; not worth a flag


def add_parser(sub) -> None:
    from core.config import MODEL_CONFIGS, TrainConfig
    from core.config_flags import add_config_flags
    from core.models import list_models

    kinds = "; ".join(f"{k} = {MODEL_CONFIGS[k].description}" for k in list_models())
    p = sub.add_parser("train", help="train a model (" + ", ".join(list_models()) + ") and save a checkpoint",
                       description="Example: python -m core train --dataset digits --model aae --prior uniform "
                                   "--latent-dim 2 --epochs 1 --out runs/checkpoints/digits-aae")
    p.add_argument("--dataset", default="mnist5k", help="registry id (mnist5k, digits, ...) or idx:PATH / npz:PATH / csv:PATH:LABEL_COLUMN / imagefolder:PATH[:grey|rgb[:SIZE]] (a folder of class folders or a .zip of them; grey 28x28 unless told, rgb 32x32; e.g. imagefolder:pets.zip:rgb:64) / upload:SHA256")
    p.add_argument("--model", default="vae", choices=list_models(), help=f"model kind ({kinds})")
    add_config_flags(p.add_argument_group("model settings (each applies to the kinds in brackets)"),
                     {k: MODEL_CONFIGS[k] for k in list_models()})
    add_config_flags(p.add_argument_group("training"), {"train": TrainConfig}, skip=TRAIN_FLAG_SKIP)
    p.add_argument("--data-root", default=None, help="folder for torchvision datasets")
    p.add_argument("--download", action="store_true", help="let torchvision download (needs internet)")
    p.add_argument("--out", required=True,
                   help="checkpoint folder to write; it must not exist yet (or be empty), unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint already at --out (once the new one is complete); a path that is "
                        "not a Latent Lab checkpoint is never replaced")
    # One training is one job: in this process it uses every torch thread; a worker process (one thread)
    # isolates it, and a Ray cluster runs it where the GPU is.
    p.add_argument("--executor", default="inline", choices=["inline", "local", "ray"],
                   help="where the training runs: this process (default: all torch threads), a worker process "
                        "(local) or a Ray cluster (ray)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on this Ray cluster (HOST:PORT; or set LATENT_LAB_RAY_ADDRESS); implies --executor ray")


def configs_from_args(args):
    """(model config, train config) from the parsed flags; ValueError with advice for bad settings."""
    from core.config import MODEL_CONFIGS, TrainConfig
    from core.config_flags import config_kwargs
    from core.device import parse_device
    from core.models import config_class

    cls = config_class(args.model)
    # input_shape (1,) is a placeholder: the job sets it from the dataset. Building the configs here checks
    # the settings before any worker starts.
    model_cfg = cls(input_shape=(1,), **config_kwargs(args, cls, MODEL_CONFIGS))
    train_cfg = TrainConfig(**config_kwargs(args, TrainConfig, {"train": TrainConfig}, skip=TRAIN_FLAG_SKIP))
    if train_cfg.device != "auto":  # the name only: whether a GPU is there is asked where the job runs
        parse_device(train_cfg.device)
    return model_cfg, train_cfg


def run(args) -> int:
    from tqdm import tqdm

    from core.checkpoints import check_out_path
    from core.executor import JobFailed, get_executor
    from core.training_job import save_trained, train_task

    model_cfg, train_cfg = configs_from_args(args)
    check_out_path(args.out, args.overwrite)  # before training: never minutes of work for a refused --out
    kind = "ray" if args.ray else args.executor
    task = {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "dataset": args.dataset,
            "data_root": args.data_root, "download": args.download}
    bar = None  # drawn once training reports (its data loaded and checked): a refused data set is one line

    def show(info: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=1, unit="batch", file=sys.stderr)
        if info.get("total_steps"):
            bar.total = info["total_steps"]
        if info.get("step") is not None:
            bar.n = info["step"]
        if info.get("losses"):
            bar.set_postfix({k: f"{v:.4g}" for k, v in info["losses"].items()}, refresh=False)
        bar.refresh()

    if kind == "inline":  # the default: no worker, torch keeps all its threads
        try:
            trained = train_task(**task, report=show)
        except BaseException:
            if bar is not None:
                bar.close()  # the error goes on a line of its own
            raise
    else:
        with get_executor(kind, workers=1, address=args.ray) as ex:
            job = ex.submit(train_task, task)
            seen = 0
            try:
                while not job.wait(0.25):
                    events, seen = job.events_since(seen)
                    for info in events:
                        show(info)
            except KeyboardInterrupt:
                job.cancel()
                raise
            try:
                trained = job.result()
            except JobFailed as exc:
                if bar is not None:
                    bar.close()
                if not (exc.is_a("ValueError") or exc.is_a("TrainingDiverged") or exc.is_a("MemoryError")):
                    print(exc.traceback_text, file=sys.stderr)  # a bug: show where
                raise
            for info in job.events_since(seen)[0]:
                show(info)
    if bar is not None:
        bar.n = bar.total
        bar.close()
    out = save_trained(args.out, trained, overwrite=args.overwrite)
    metrics = trained["metrics"]
    print(f"saved {out}  recon_mse={metrics['recon_mse']:.5f}  {metrics['seconds']} s")
    return 0
