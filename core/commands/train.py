"""`python -m core train`: train one model on one dataset and save it as a checkpoint folder."""

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


def run(args) -> int:
    from tqdm import tqdm

    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit, reconstruction_error

    data = load_dataset(args.dataset, root=args.data_root, download=args.download)
    prior = args.prior or {"aae": "uniform", "ae": "none", "vae": "gaussian"}.get(args.model, "gaussian")
    model_cfg = ModelConfig(kind=args.model, input_shape=data.input_shape, latent_dim=args.latent_dim, prior=prior,
                            beta=args.beta, beta_norm=args.beta_norm, hidden=args.hidden, arch=args.arch)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            device=args.device)
    model = build_model(model_cfg, seed=args.seed)  # --seed controls the initial weights too
    bar = tqdm(total=train_cfg.epochs * -(-len(data) // train_cfg.batch_size), unit="batch", file=sys.stderr)

    def on_step(info):
        bar.n = info["step"]
        bar.set_postfix({k: f"{v:.4g}" for k, v in info["losses"].items()}, refresh=True)

    history = fit(model, data, train_cfg, on_step=on_step)
    bar.n = bar.total
    bar.close()
    metrics = {"recon_mse": reconstruction_error(model, data.x), "epochs_run": len(history["epoch"]),
               "seconds": round(sum(history["seconds"]), 2)}
    out = save_checkpoint(Path(args.out), model, train_config=train_cfg, dataset_id=data.id,
                          class_names=data.class_names, metrics=metrics, history=history)
    print(f"saved {out}  recon_mse={metrics['recon_mse']:.5f}  {metrics['seconds']} s")
    return 0
