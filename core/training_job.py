"""Training as a job: `train_task` trains one model and returns it as data; `save_trained` writes it.

`train_task` is a job for core.executor: it runs in the caller's process, in a worker process or on a Ray
cluster, reports progress through `report`, stops early through `stop`, and returns the weights as bytes;
the caller writes the checkpoint (`save_trained`), so a checkpoint trained on a cluster lands on the
caller's machine. The app's Train page and `python -m core train` both call these two functions.
"""

from __future__ import annotations

from pathlib import Path


def train_task(model: dict, train: dict, dataset: str, data_root: str | None = None, download: bool = False,
               report=None, stop=None) -> dict:
    """The job: build ModelConfig.from_dict(model) (its input_shape set from the dataset), fit it on
    `dataset` with TrainConfig(**train), and return {"model", "train", "dataset", "class_names",
    "weights" (safetensors bytes), "history", "metrics"}.

    report(dict) gets fit's on_step dicts plus {"dataset", "total_steps"} first; stop.is_set() ends
    training after the current batch (history["stopped"]). Raises core.train.TrainingDiverged on NaN."""
    from safetensors.torch import save as safetensors_bytes

    from core.checkpoints import check_model_size
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit, reconstruction_error

    data = load_dataset(dataset, root=data_root, download=download)
    mcfg = ModelConfig.from_dict({**model, "input_shape": list(data.input_shape)})
    tcfg = TrainConfig.from_dict(train)
    check_model_size(mcfg)  # a model too big to load as a checkpoint is not trained (nor allocated)
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


def save_trained(out: str | Path, trained: dict, overwrite: bool = False) -> Path:
    """Write train_task's result as a checkpoint folder (in the caller's process, on its filesystem).

    An existing checkpoint at `out` is replaced only with `overwrite`; anything else there is never replaced
    (core.checkpoints.check_out_path: call it before training, so a refused path costs no training)."""
    from safetensors.torch import load as load_safetensors_bytes

    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig
    from core.models import build_model

    net = build_model(ModelConfig.from_dict(trained["model"]))
    net.load_state_dict(load_safetensors_bytes(trained["weights"]), strict=True)
    return save_checkpoint(Path(out), net, train_config=trained["train"], dataset_id=trained["dataset"],
                           class_names=trained["class_names"], metrics=trained["metrics"],
                           history=trained["history"], overwrite=overwrite)
