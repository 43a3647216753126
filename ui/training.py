"""Train a model as an executor job (a worker process, not the web server) and save it under runs/checkpoints/."""

from __future__ import annotations

import re
import time
import uuid

from ui import catalog, jobs

# label -> (kind, prior)
MODEL_CHOICES = {
    "AAE · uniform prior": ("aae", "uniform"),
    "AAE · Gaussian prior": ("aae", "gaussian"),
    "beta-VAE": ("vae", "gaussian"),
    "AE (no prior)": ("ae", "none"),
}


def folder_name(spec: str, kind: str, prior: str, latent_dim: int) -> str:
    """A safe folder name made by us (never from user text beyond the registry id). The time says when;
    the random suffix keeps two trainings started in the same second (two users) apart."""
    ds = re.sub(r"[^A-Za-z0-9_-]+", "_", spec)[:40] or "data"
    model = kind if kind != "aae" else f"aae-{prior}"
    return f"{ds}-{model}-z{latent_dim}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def start_training(ds, *, kind: str, prior: str, latent_dim: int, beta: float, beta_norm: bool,
                   epochs: int, lr: float, seed: int, owner: str, spec: str | None = None) -> jobs.ExecutorJob:
    """Validate the settings now (ValueError), then queue core.commands.train.train_task for `owner`
    (QueueFull, a ValueError, when that session already has its share of jobs).

    `ds` is the loaded dataset (for its input shape), `spec` the name the worker loads it by (default ds.id).
    The job's progress holds step/total_steps/epoch, its events the on_step dicts (the loss curve);
    once it has finished the server writes the checkpoint and job.result is its key "runs/NAME"."""
    from core.commands.train import save_trained, train_task
    from core.config import ModelConfig, TrainConfig
    from core.models import build_model

    mcfg = ModelConfig(kind=kind, input_shape=tuple(ds.input_shape), latent_dim=int(latent_dim),
                       prior=prior, beta=float(beta), beta_norm=bool(beta_norm))
    tcfg = TrainConfig(epochs=int(epochs), lr=float(lr), seed=int(seed))
    build_model(mcfg)  # a model that cannot be built fails here, with its message, not in a worker
    name = folder_name(ds.id, kind, prior, latent_dim)
    out = catalog.user_checkpoint_dir() / name  # fixed now: LATENT_LAB_RUNS is read in the session

    def save(trained: dict) -> str:
        save_trained(out, trained)
        return f"runs/{name}"

    job = jobs.submit("train", train_task, {"model": mcfg.to_dict(), "train": tcfg.to_dict(),
                                            "dataset": spec or ds.id},
                      owner=owner, then=save, keep_event=lambda e: "losses" in e and "phase" not in e)
    job.dataset = spec or ds.id  # the sidebar selects this dataset with the new checkpoint
    return job
