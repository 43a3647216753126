"""fit(model, data, cfg): seeded training over a resident tensor, progress through a callback.

The whole data set lives on the device and each epoch is `randperm(N).split(batch_size)`: for MNIST-sized
data a per-sample DataLoader costs tens of times more. Each batch runs the model's training phases (one for
a VAE; reconstruction, discriminator and generator for an AAE), each with its own Adam optimiser.
"""

from __future__ import annotations

import copy
import threading
import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn

from core.config import TrainConfig
from core.data import Dataset
from core.device import pick_device

StepCallback = Callable[[dict], None]
LOG_EVERY = 10  # batches between on_step calls inside an epoch (each call costs a device sync)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds the weights of the last good epoch."""

    def __init__(self, message: str, history: dict):
        super().__init__(message)
        self.history = history


def _autocast(device: torch.device, amp: bool):
    # bf16 autocast only on GPU: on CPU it helps only with AMX/AVX512-BF16, which most machines lack.
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _optimiser(phase_name: str, params, lr: float) -> torch.optim.Optimizer:
    # Adversarial phases use beta1 = 0.5, the usual GAN setting that keeps the min-max game from oscillating.
    betas = (0.5, 0.999) if phase_name in ("disc", "gen") else (0.9, 0.999)
    return torch.optim.Adam(params, lr=lr, betas=betas)


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig, on_step: StepCallback | None = None,
        stop: threading.Event | None = None) -> dict:
    """Train `model` on `data.x` for `cfg.epochs` epochs; returns the history of per-epoch mean losses.

    on_step gets {"epoch", "step", "total_steps", "losses": {term: float}} every few batches and at the
    end of each epoch. Setting `stop` ends training after the current batch (history["stopped"] = True).
    Raises TrainingDiverged on NaN/inf, with the model restored to its last good epoch.
    """
    if tuple(data.input_shape) != tuple(model.config.input_shape):
        raise ValueError(f"the model expects inputs of shape {model.config.input_shape} but {data.id} has "
                         f"{data.input_shape}; build the model from this dataset's input_shape")
    device = pick_device(cfg.device)
    model.to(device).train()
    x = data.x.to(device)  # (N, *shape), resident
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order
    # The model's own randomness (VAE noise, AAE prior draws) comes from a per-fit generator, not the global
    # RNG: two trainings in two threads (two app users) then stay reproducible and never disturb each other.
    model.rng = torch.Generator(device=device).manual_seed(cfg.seed)
    phases = model.training_phases()
    optimisers = [_optimiser(p.name, p.params, cfg.lr * p.lr_scale) for p in phases]
    steps_per_epoch = -(-len(x) // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    history: dict = {"epoch": [], "seconds": [], "stopped": False, "device": str(device)}
    last_good = copy.deepcopy(model.state_dict())
    step = 0

    def diverged(epoch: int, losses: dict) -> TrainingDiverged:
        model.load_state_dict(last_good)
        return TrainingDiverged(
            f"training diverged in epoch {epoch} (losses {losses}); the model keeps its epoch-{epoch - 1} "
            f"weights and no checkpoint was written. Try a lower learning rate (now {cfg.lr}).", history)

    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            sums: dict[str, torch.Tensor] = {}
            n_batches = 0
            for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
                xb = x[idx.to(device)]
                for phase, opt in zip(phases, optimisers):
                    opt.zero_grad(set_to_none=True)
                    with _autocast(device, cfg.amp):
                        terms = phase.loss_fn(xb)
                    terms["loss"].backward()
                    opt.step()
                    named = {k: v for k, v in terms.items() if k != "loss"} or {phase.name: terms["loss"]}
                    for k, v in named.items():
                        sums[k] = sums.get(k, 0.0) + v.detach().float()
                n_batches += 1
                step += 1
                if step % LOG_EVERY == 0:  # one device sync per LOG_EVERY batches
                    running = {k: float(v) / n_batches for k, v in sums.items()}
                    if not all(map(_finite, running.values())):
                        raise diverged(epoch, running)
                    if on_step:
                        on_step({"epoch": epoch, "step": step, "total_steps": total_steps, "losses": running})
                if stop is not None and stop.is_set():
                    history["stopped"] = True
                    break
            means = {k: float(v) / n_batches for k, v in sums.items()}
            # The losses were computed before each step: the last step may still have broken the weights.
            if not all(map(_finite, means.values())) or not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise diverged(epoch, means)
            last_good = copy.deepcopy(model.state_dict())
            history["epoch"].append(epoch)
            history["seconds"].append(time.perf_counter() - t0)
            for k, v in means.items():
                history.setdefault(k, []).append(v)
            if on_step:
                on_step({"epoch": epoch, "step": step, "total_steps": total_steps, "losses": means})
            if history["stopped"]:
                break
    finally:
        model.rng = None
        model.eval()
    return history


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


@torch.no_grad()
def reconstruction_error(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean per-element squared error of decode(encode(x)) (the VAE uses its mean): the metric checkpoints record."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for xb in x.split(batch_size):
        xb = xb.to(device)
        total += float(((model.decode(model.encode(xb)).float() - xb) ** 2).sum())
    model.train(was_training)
    return total / x.numel()
