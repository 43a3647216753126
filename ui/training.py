"""Train a model as an executor job (a worker process, not the web server) and save it under runs/checkpoints/.

What a user can train is the model registry: `model_kinds()` lists the registered kinds with their config
classes, and the page draws each kind's settings from its config dataclass (ui.config_form).
"""

from __future__ import annotations

import re
import time
import uuid

from ui import catalog, jobs
from ui.quota import check_disk_quota

TRAIN_FIELDS = ("epochs", "lr", "seed")  # the TrainConfig fields the page offers (batch size etc. keep defaults)


def model_kinds() -> dict:
    """{kind: its config class}, in registry order (the Train page's choices)."""
    from core.config import MODEL_CONFIGS
    from core.models import list_models

    return {k: MODEL_CONFIGS[k] for k in list_models()}


def folder_name(spec: str, model_slug: str, latent_dim: int) -> str:
    """A safe folder name made by us (never from user text beyond the registry id). The time says when;
    the random suffix keeps two trainings started in the same second (two users) apart."""
    ds = re.sub(r"[^A-Za-z0-9_-]+", "_", spec)[:40] or "data"
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_slug)[:40] or "model"
    return f"{ds}-{model}-z{latent_dim}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def start_training(ds, model: dict, train: dict, *, owner: str, spec: str | None = None) -> jobs.ExecutorJob:
    """Validate the settings and the disk quota now (ValueError), then queue core.training_job.train_task for `owner`
    (QueueFull, a ValueError, when that session already has its share of jobs).

    `ds` is the loaded dataset (for its input shape), `model` {"kind", its config's fields}, `train` TrainConfig
    fields, `spec` the name the worker loads the dataset by (default ds.id). The job's progress holds
    step/total_steps/epoch, its events the on_step dicts (the loss curve); once it has finished the server
    writes the checkpoint and job.result is its key "runs/NAME"."""
    from core.checkpoints import check_model_size
    from core.config import ModelConfig, TrainConfig
    from core.training_job import save_trained, train_task

    mcfg = ModelConfig.from_dict({**model, "input_shape": tuple(ds.input_shape)})
    tcfg = TrainConfig.from_dict(dict(train))
    # A model that cannot be built, or is too big, fails here with its message, not in a worker; it is built
    # on torch's meta device (shapes only), so the web server allocates nothing for it.
    check_model_size(mcfg)
    check_disk_quota()  # the checkpoint is written under runs/: refuse before training, not after
    name = folder_name(ds.id, mcfg.slug(), mcfg.latent_dim)
    out = catalog.user_checkpoint_dir() / name  # fixed now: LATENT_LAB_RUNS is read in the session

    def save(trained: dict) -> str:
        save_trained(out, trained)
        return f"runs/{name}"

    job = jobs.submit("train", train_task, {"model": mcfg.to_dict(), "train": tcfg.to_dict(),
                                            "dataset": spec or ds.id},
                      owner=owner, then=save, keep_event=lambda e: "losses" in e and "phase" not in e)
    job.dataset = spec or ds.id  # the sidebar selects this dataset with the new checkpoint
    return job
