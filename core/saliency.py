"""Where a classifier looks: input saliency with captum (seed 003's saliency maps), and the few-shot pair
(one classifier trained without augmentation, one with) whose maps the Saliency page compares.

Methods (captum 0.9): "saliency" |d logit_target / d x| (Simonyan et al. 2014); "smoothgrad" the same
averaged over noisy copies of x (NoiseTunnel, Smilkov et al. 2017); "integrated-gradients"
(Sundararajan et al. 2017) from an all-black baseline. Maps have the input's shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

METHODS = ("saliency", "smoothgrad", "integrated-gradients")
METHOD_TITLES = {"saliency": "Saliency (|gradient|)", "smoothgrad": "SmoothGrad",
                 "integrated-gradients": "Integrated Gradients"}


def input_saliency(model: nn.Module, x: Tensor, method: str = "saliency", target: Tensor | None = None,
                   generator: torch.Generator | None = None, n_samples: int = 16, stdev: float = 0.15,
                   steps: int = 32, absolute: bool = True) -> Tensor:
    """Attribution maps (B, *x.shape[1:]) of `model`'s logit for `target` (default: its prediction).

    smoothgrad: n_samples noisy copies, noise N(0, stdev^2) in input units (images in [0, 1]: 0.15 is
    15% of the range); the draws come from `generator` (or seed 0), the same maps for the same generator.
    integrated-gradients: `steps` points from an all-zero baseline; signed unless `absolute`.
    """
    from captum.attr import IntegratedGradients, Saliency

    if method not in METHODS:
        raise ValueError(f"saliency method must be one of {METHODS}, got {method!r}")
    was_training = model.training
    model.eval()
    try:
        x = x.detach().to(next(model.parameters()).device, torch.float32).requires_grad_(True)
        if target is None:
            with torch.no_grad():
                target = model(x).argmax(1)
        target = torch.as_tensor(target, device=x.device).long()
        if method == "saliency":
            maps = Saliency(model).attribute(x, target=target, abs=True)
        elif method == "smoothgrad":
            maps = _smoothgrad(model, x, target, generator, n_samples, stdev)
        else:
            maps = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                        n_steps=steps)
    finally:
        model.train(was_training)
    maps = maps.detach()
    return maps.abs() if absolute else maps


def _smoothgrad(model, x, target, generator, n_samples, stdev):
    from captum.attr import NoiseTunnel, Saliency

    if n_samples < 1 or stdev < 0:
        raise ValueError(f"SmoothGrad needs n_samples >= 1 and stdev >= 0, got {n_samples} and {stdev}")
    seed = 0 if generator is None else int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    # captum's NoiseTunnel draws its noise with torch.normal from the global RNG and takes no generator:
    # fork the RNG of x's device, seed the fork from the caller's generator, and the global state is
    # restored on exit (other threads' draws and later code see no change).
    # the tensor's own GPU (x may sit on cuda:1 while cuda:0 is current): fork and seed that device's RNG
    cuda_index = (x.device.index if x.device.index is not None else torch.cuda.current_device()) \
        if x.device.type == "cuda" else None
    with torch.random.fork_rng(devices=[] if cuda_index is None else [cuda_index]):
        if cuda_index is not None:
            torch.cuda.default_generators[cuda_index].manual_seed(seed)
        else:
            torch.default_generator.manual_seed(seed)
        return NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=n_samples,
                                                      nt_samples_batch_size=n_samples, stdevs=stdev,
                                                      target=target, abs=True)


def saliency_maps(model: nn.Module, x: Tensor, methods=METHODS, generator: torch.Generator | None = None,
                  **kwargs) -> dict[str, Tensor]:
    """{method: maps (B, *shape)} for the model's own predictions on x."""
    with torch.no_grad():
        target = model.eval()(x.to(next(model.parameters()).device)).argmax(1)
    return {m: input_saliency(model, x, m, target=target, generator=generator, **kwargs).cpu() for m in methods}


# -------------------------------------------------------------------------------------- the few-shot pair

@dataclass
class ClassifierPair:
    """Two classifiers trained on the same shots with the same budget and seed: `plain` without
    augmentation, `augmented` with `method`. Accuracies are on every image of the data set not among the shots."""

    plain: nn.Module
    augmented: nn.Module
    method: str
    shot_index: Tensor          # (K * shots,) rows of the data set used for training
    test_index: Tensor          # (M,) the other rows
    accuracy: dict[str, float]  # {"none": ..., method: ...}


def train_pair(data, shots: int, method: str, seed: int = 0, steps: int = 150, device: str = "cpu") -> ClassifierPair:
    """Train the few-shot protocol's classifier (its frozen recipe, `steps` optimiser steps) twice on `shots`
    examples per class of `data` (a core.data.Dataset): once with "none", once with the batch augmentation
    `method`; the same initial weights, batch order and dropout masks (core.fewshot's named streams).
    The only place this module touches the few-shot engine."""
    import torch.nn.functional as F

    from core.augment import parse_method
    from core.data import fewshot_split
    from core.fewshot import Recipe, train_classifier

    if not parse_method(method) or any(a.stage not in ("batch", "loss") for a in parse_method(method)):
        raise ValueError(f"{method!r} is not a batch augmentation (or the ISDA loss); pick one that transforms "
                         f"training batches, e.g. classic, mixup, cutmix or saliencymix")
    shot_index, test_index = fewshot_split(data.y, shots, seed)
    x, y = data.x[shot_index].to(device), data.y[shot_index].to(device)
    y_soft = F.one_hot(y, data.n_classes).float()
    recipe = Recipe(steps=steps)
    models = {m: train_classifier(x, y_soft, recipe, seed=seed, shots=shots, method=m, n_classes=data.n_classes,
                                  device=device) for m in ("none", method)}
    accuracy = {}
    with torch.no_grad():
        x_test, y_test = data.x[test_index].to(device), data.y[test_index].to(device)
        for m, model in models.items():
            pred = torch.cat([model(b).argmax(1) for b in x_test.split(1000)])
            accuracy[m] = float((pred == y_test).float().mean())
    return ClassifierPair(models["none"], models[method], method, shot_index, test_index, accuracy)


# -------------------------------------------------------------------------------------- executor job

def pair_saliency(dataset: str, shots: int, method: str, seed: int, steps: int, n_images: int, pick_seed: int,
                  smoothgrad_samples: int = 16) -> dict:
    """The Saliency page's work as an executor job (a worker process, never the web server), from plain
    arguments to plain arrays: train_pair on the data set `dataset` (a core.data spec), then the maps of
    both classifiers on n_images test images (one per class first, drawn with pick_seed).

    -> {"x": (B, C, H, W) float32, "rows": [B data set rows], "truth": [B class ids], "ink": (B, H, W) bool, "accuracy": {name: acc},
        "models": {name: {"pred": [B class ids], "conf": [B], "maps": {method: (B, C, H, W) float32}}}}
    with names "none" and `method`."""
    import numpy as np

    from core.data import load_dataset

    data = load_dataset(dataset)
    pair = train_pair(data, shots, method, seed=seed, steps=steps)
    test = pair.test_index
    g = np.random.default_rng(pick_seed)
    y = data.y[test].numpy()
    by_class = [g.permutation(np.flatnonzero(y == c)) for c in range(data.n_classes)]
    rows = [int(test[p[0]]) for p in by_class if len(p)][:n_images]
    x = data.x[rows]                                                           # (B, C, H, W)
    out = {"x": x.numpy(), "rows": rows, "truth": data.y[rows].tolist(), "ink": (x.sum(1) > 0.25 * x.shape[1]).numpy(),
           "accuracy": dict(pair.accuracy), "models": {}}
    for name, model in (("none", pair.plain), (method, pair.augmented)):
        with torch.no_grad():
            probs = torch.softmax(model(x), 1)                                 # (B, K)
        maps = saliency_maps(model, x, METHODS, generator=torch.Generator().manual_seed(pick_seed),
                             n_samples=smoothgrad_samples)
        out["models"][name] = {"pred": probs.argmax(1).tolist(), "conf": probs.max(1).values.tolist(),
                               "maps": {m: v.numpy() for m, v in maps.items()}}
    return out
