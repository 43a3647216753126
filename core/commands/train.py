"""`python -m core train`: train one model on one dataset and save it as a checkpoint folder.

The training itself is `train_task`, a job for core.executor: it runs in this process (the default),
in a worker process (`--executor local`) or on a Ray cluster (`--ray ADDRESS`), reports progress through
`report`, stops early through `stop`, and returns the weights as bytes; the caller writes the checkpoint
(`save_trained`), so a checkpoint trained on a cluster lands on this machine. The app's Train tab calls
the same two functions.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    from core.models import list_models

    p = sub.add_parser("train", help="train an AE / AAE / beta-VAE and save a checkpoint",
                       description="Example: python -m core train --dataset digits --model aae --prior uniform "
                                   "--latent-dim 2 --epochs 1 --out runs/checkpoints/digits-aae")
    p.add_argument("--dataset", default="mnist5k", help="registry id (mnist5k, digits, ...) or idx:PATH / npz:PATH")
    p.add_argument("--model", default="vae", choices=list_models())
    p.add_argument("--prior", default=None, choices=["uniform", "gaussian", "none"],
                   help="AAE prior (default uniform); ae is always none, vae always gaussian")
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--beta", type=float, default=1.0, help="beta-VAE KL weight")
    p.add_argument("--beta-norm", action="store_true", help="use beta_norm = beta * d / N (N = input size)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--arch", default="auto", choices=["auto", "mlp", "conv"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--data-root", default=None, help="folder for torchvision datasets")
    p.add_argument("--download", action="store_true", help="let torchvision download (needs internet)")
    p.add_argument("--out", required=True, help="checkpoint folder to write (replaced only on success)")
    # One training is one job: in this process it uses every torch thread; a worker process (one thread)
    # isolates it, and a Ray cluster runs it where the GPU is.
    p.add_argument("--executor", default="inline", choices=["inline", "local", "ray"],
                   help="where the training runs: this process (default: all torch threads), a worker process "
                        "(local) or a Ray cluster (ray)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on this Ray cluster (HOST:PORT; or set LATENT_LAB_RAY_ADDRESS); implies --executor ray")


def train_task(model: dict, train: dict, dataset: str, data_root: str | None = None, download: bool = False,
               report=None, stop=None) -> dict:
    """The job: build ModelConfig(**model), fit it on `dataset` with TrainConfig(**train), and return
    {"model", "train", "dataset", "class_names", "weights" (safetensors bytes), "history", "metrics"}.

    report(dict) gets fit's on_step dicts plus {"dataset", "total_steps"} first; stop.is_set() ends
    training after the current batch (history["stopped"]). Raises core.train.TrainingDiverged on NaN."""
    from safetensors.torch import save as safetensors_bytes

    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit, reconstruction_error

    data = load_dataset(dataset, root=data_root, download=download)
    mcfg = ModelConfig.from_dict({**model, "input_shape": list(data.input_shape)})
    tcfg = TrainConfig.from_dict(train)
    net = build_model(mcfg, seed=tcfg.seed)  # the seed controls the initial weights too
    total = tcfg.epochs * -(-len(data) // tcfg.batch_size)
    last = {"dataset": data.id, "step": 0, "epoch": 1, "total_steps": total}

    def on_step(info: dict) -> None:
        last.update(info)
        if report is not None:
            report(info)

    if report is not None:
        report(dict(last))
    history = fit(net, data, tcfg, on_step=on_step, stop=stop)
    if report is not None:  # the latest report carries everything a progress display needs
        report({**{k: v for k, v in last.items() if k != "losses"}, "phase": "saving",
                "stopped": bool(history.get("stopped"))})
    # A stopped job has about a second before its worker is ended: measure on a slice then (~0.2 s), not
    # on the whole set (~1 s for a conv model on 5,000 MNIST images with one thread).
    x = data.x[:1024] if history.get("stopped") else data.x
    metrics = {"recon_mse": reconstruction_error(net, x), "recon_mse_examples": len(x),
               "epochs_run": len(history["epoch"]), "seconds": round(sum(history["seconds"]), 2)}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return {"model": mcfg.to_dict(), "train": tcfg.to_dict(), "dataset": data.id,
            "class_names": list(data.class_names), "weights": safetensors_bytes(state), "history": history,
            "metrics": metrics}


def save_trained(out: str | Path, trained: dict) -> Path:
    """Write train_task's result as a checkpoint folder (in the caller's process, on its filesystem)."""
    from safetensors.torch import load as load_safetensors_bytes

    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig
    from core.models import build_model

    net = build_model(ModelConfig.from_dict(trained["model"]))
    net.load_state_dict(load_safetensors_bytes(trained["weights"]), strict=True)
    return save_checkpoint(Path(out), net, train_config=trained["train"], dataset_id=trained["dataset"],
                           class_names=trained["class_names"], metrics=trained["metrics"],
                           history=trained["history"])


def run(args) -> int:
    from tqdm import tqdm

    from core.config import ModelConfig, TrainConfig
    from core.executor import JobFailed, get_executor

    prior = args.prior or {"aae": "uniform", "ae": "none", "vae": "gaussian"}.get(args.model, "gaussian")
    # Check the settings here, before any worker starts (bad input -> ValueError with advice).
    model_cfg = ModelConfig(kind=args.model, input_shape=(1,), latent_dim=args.latent_dim, prior=prior,
                            beta=args.beta, beta_norm=args.beta_norm, hidden=args.hidden, arch=args.arch)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            device=args.device)
    kind = "ray" if args.ray else args.executor
    task = {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "dataset": args.dataset,
            "data_root": args.data_root, "download": args.download}
    bar = tqdm(total=1, unit="batch", file=sys.stderr)

    def show(info: dict) -> None:
        if info.get("total_steps"):
            bar.total = info["total_steps"]
        if info.get("step") is not None:
            bar.n = info["step"]
        if info.get("losses"):
            bar.set_postfix({k: f"{v:.4g}" for k, v in info["losses"].items()}, refresh=False)
        bar.refresh()

    if kind == "inline":  # the default: no worker, torch keeps all its threads
        trained = train_task(**task, report=show)
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
                bar.close()
                if not (exc.is_a("ValueError") or exc.is_a("TrainingDiverged")):
                    print(exc.traceback_text, file=sys.stderr)  # a bug: show where
                raise
            for info in job.events_since(seen)[0]:
                show(info)
    bar.n = bar.total
    bar.close()
    out = save_trained(args.out, trained)
    metrics = trained["metrics"]
    print(f"saved {out}  recon_mse={metrics['recon_mse']:.5f}  {metrics['seconds']} s")
    return 0
