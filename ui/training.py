"""Train a model in a background Job and save it as a checkpoint under runs/checkpoints/."""

from __future__ import annotations

import re
import time

from ui import catalog, jobs

# label -> (kind, prior)
MODEL_CHOICES = {
    "AAE · uniform prior": ("aae", "uniform"),
    "AAE · Gaussian prior": ("aae", "gaussian"),
    "beta-VAE": ("vae", "gaussian"),
    "AE (no prior)": ("ae", "none"),
}


def folder_name(spec: str, kind: str, prior: str, latent_dim: int) -> str:
    """A safe folder name made by us (never from user text beyond the registry id)."""
    ds = re.sub(r"[^A-Za-z0-9_-]+", "_", spec)[:40] or "data"
    model = kind if kind != "aae" else f"aae-{prior}"
    return f"{ds}-{model}-z{latent_dim}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_training(ds, *, kind: str, prior: str, latent_dim: int, beta: float, beta_norm: bool,
                   epochs: int, lr: float, seed: int) -> jobs.Job:
    """Validate the settings now (ValueError), then train in a worker thread.

    The job's progress dict holds step/total_steps/epoch; job.events the on_step dicts;
    job.result the new checkpoint key "runs/NAME"."""
    from core.config import ModelConfig, TrainConfig
    from core.models import build_model

    mcfg = ModelConfig(kind=kind, input_shape=tuple(ds.input_shape), latent_dim=int(latent_dim),
                       prior=prior, beta=float(beta), beta_norm=bool(beta_norm))
    tcfg = TrainConfig(epochs=int(epochs), lr=float(lr), seed=int(seed))
    model = build_model(mcfg, seed=int(seed))  # the seed controls the initial weights too
    name = folder_name(ds.id, kind, prior, latent_dim)

    def work(job: jobs.Job) -> str:
        from core.checkpoints import save_checkpoint
        from core.train import fit, reconstruction_error

        def on_step(info: dict) -> None:
            job.report(info, step=info["step"], total_steps=info["total_steps"], epoch=info["epoch"],
                       losses=info["losses"])

        job.report(dataset=ds.id, step=0, epoch=1, total_steps=-(-len(ds) // tcfg.batch_size) * tcfg.epochs)
        history = fit(model, ds, tcfg, on_step=on_step, stop=job.stop)
        job.report(phase="saving")
        metrics = {"recon_mse": reconstruction_error(model, ds.x)}  # the whole set, as the CLI records
        out = catalog.user_checkpoint_dir() / name
        save_checkpoint(out, model, train_config=tcfg, dataset_id=ds.id, class_names=list(ds.class_names),
                        metrics=metrics, history=history)
        return f"runs/{name}"

    return jobs.start("train", work)
