"""Batched cells: K few-shot classifiers of the same shape trained as one stacked model (torch.func).

Each cell keeps its own named streams, drawn exactly as `recipe.train_classifier` draws them: the initial
weights (seed, "init"), the real order (seed, shots, "real-order"), the generated order, the batch
augmentations (seed, shots, method, "augment") and the dropout masks (seed, shots, "dropout"). The masks are
drawn outside vmap from each cell's own generator, with the shape and in the order SeededDropout would draw
them (one (B, D) uniform per step), and passed into the stacked forward. The stacked parameters get one AdamW
with the recipe's hyper-parameters and schedule: AdamW is element-wise and the total loss is the sum of the
cells' losses, so each slice is updated as its own optimizer would update it. What differs from single cells
is only the arithmetic of the batched kernels (measured in tests/test_batched.py).

A batch is one unit: `stop` is checked every step; when set, `Stopped` is raised and no model of the batch is
returned (the caller keeps the records of cells finished before the batch, and reruns the whole batch).

Supported: methods without online parts or a loss hook (none, the pixel batch methods, the expand methods'
generated rows). `supports(method)` says which; others run as single cells.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from core.augment import augment, parse_method
from core.fewshot.generators import check_stop
from core.fewshot.recipe import _Cycle, _schedule, input_stats
from core.fewshot.spec import Recipe
from core.fewshot.streams import stream
from core.models.classifier import Classifier, MaxPool2dCL, build_classifier


def supports(method: str) -> bool:
    """True when `method` can be trained batched: no online parts (they draw from the batch inside the loop
    with hooks) and no loss hook (isda)."""
    return all(a.stage not in ("online", "loss") for a in parse_method(method))


@dataclass
class CellTraining:
    """One cell's train_classifier arguments (the same meaning as there)."""
    x: Tensor | None
    y: Tensor | None
    seed: int
    shots: int
    method: str = "none"
    params: dict | None = None
    x_gen: Tensor | None = None
    y_gen: Tensor | None = None
    stats: tuple | None = None
    n_classes: int | None = None


class _MaskedForward(nn.Module):
    """The classifier's forward with the dropout mask given (keep: (B, D) bool, or None without dropout)."""

    def __init__(self, clf: Classifier):
        super().__init__()
        self.clf = clf

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        c = self.clf
        if c.input_mean is not None:
            x = (x - c.input_mean) / c.input_std
        for layer in c.body:
            # vmap has no channels-last clone: the plain NCHW max pool (the same values, see MaxPool2dCL)
            x = nn.MaxPool2d.forward(layer, x) if isinstance(layer, MaxPool2dCL) else layer(x)
        h = c.proj[1](c.proj[0](x))                             # (B, D): Linear, ReLU; dropout below
        if keep is not None:
            h = h * keep / (1 - c.proj[2].p)
        return c.head(h)                                        # (B, C)


class _Batches:
    """One cell's per-step batch, drawn from its own streams as train_classifier draws it."""

    def __init__(self, job: CellTraining, recipe: Recipe, device):
        self.job, self.device = job, device
        x, x_gen = job.x, job.x_gen
        self.real = _Cycle(len(x), stream(job.seed, job.shots, "real-order"), device) if x is not None else None
        self.gen = (_Cycle(len(x_gen), stream(job.seed, job.shots, job.method, "gen-order"), device)
                    if x_gen is not None else None)
        self.rng = stream(job.seed, job.shots, job.method, "augment", device=device)
        self.dropout = stream(job.seed, job.shots, "dropout", device=device)
        self.bs_real = min(recipe.batch_size, len(x)) if x is not None else 0
        self.bs_gen = (max(1, round(recipe.gen_ratio * self.bs_real)) if x is not None
                       else min(recipe.batch_size, len(x_gen)))

    def next(self) -> tuple[Tensor, Tensor]:
        j, xs, ys = self.job, [], []
        if self.real is not None:
            idx = self.real.take(self.bs_real)
            xs.append(j.x[idx])
            ys.append(j.y[idx])
        if self.gen is not None:
            idx = self.gen.take(self.bs_gen)
            xs.append(j.x_gen[idx])
            ys.append(j.y_gen[idx])
        return augment(j.method, torch.cat(xs), torch.cat(ys), self.rng, stage="batch", params=j.params or {})

    def mask(self, shape, p: float) -> Tensor:
        return torch.rand(shape, generator=self.dropout, device=self.device) >= p


def _build(job: CellTraining, recipe: Recipe, device) -> Classifier:
    like = job.x if job.x is not None else job.x_gen
    n_classes = job.n_classes or (job.y if job.y is not None else job.y_gen).shape[1]
    mean, std = ((job.stats if job.stats is not None else input_stats(like)) if recipe.standardise
                 else (None, None))
    return build_classifier(tuple(like.shape[1:]), n_classes, seed=stream(job.seed, "init", tuple(like.shape[1:])),
                            width=recipe.width, feature_dim=recipe.feature_dim, dropout=recipe.dropout,
                            input_mean=mean, input_std=std).to(device)


def train_stacked(jobs: list[CellTraining], recipe: Recipe, device="cpu",
                  stop: threading.Event | None = None) -> list[Classifier]:
    """Train the jobs' classifiers as one stacked model; returns one eval-mode Classifier per job, in order.
    All jobs must have the same input shape, class count and batch size (same data, shots-size and method)."""
    for j in jobs:
        if j.x is None and j.x_gen is None:
            raise ValueError("nothing to train on: give real examples, generated ones or both")
        if not supports(j.method):
            raise ValueError(f"{j.method} cannot be batched (online part or loss hook): train it as a single cell")
    models = [_build(j, recipe, device) for j in jobs]
    feeds = [_Batches(j, recipe, device) for j in jobs]
    shapes = {(m.input_shape, m.n_classes, f.bs_real, f.bs_gen, m.input_mean is None) for m, f in zip(models, feeds)}
    if len(shapes) != 1:
        raise ValueError(f"batched cells need one shape (input, classes, batch sizes); got {sorted(map(str, shapes))}")
    wrapped = [_MaskedForward(m) for m in models]
    params, buffers = stack_module_state(wrapped)               # {name: (K, *shape)}
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = _MaskedForward(_build(jobs[0], recipe, "meta"))
    p_drop = models[0].proj[2].p

    def loss_one(p, b, x, y, keep):
        logits = functional_call(base, (p, b), (x, keep))
        return -(y * F.log_softmax(logits, dim=1)).sum(1).mean()

    use_mask = p_drop > 0
    step_grads = vmap(grad_and_value(loss_one), in_dims=(0, 0, 0, 0, 0 if use_mask else None))
    opt = torch.optim.AdamW(list(params.values()), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = _schedule(opt, recipe)
    for _ in range(recipe.steps):
        check_stop(stop)
        batches = [f.next() for f in feeds]
        xb = torch.stack([b[0] for b in batches])                # (K, B, *shape)
        yb = torch.stack([b[1] for b in batches])                # (K, B, C)
        keep = (torch.stack([f.mask((xb.shape[1], recipe.feature_dim), p_drop) for f in feeds])
                if use_mask else None)                           # (K, B, D)
        grads, _ = step_grads(params, buffers, xb, yb, keep)
        for k, v in params.items():
            v.grad = grads[k]
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sched is not None:
            sched.step()
    with torch.no_grad():
        for i, m in enumerate(models):                           # unstack: slice i into cell i's own model
            for name, v in m.named_parameters():
                v.copy_(params["clf." + name][i])
    return [m.eval() for m in models]


def train_classifiers(inputs: list, spec, device="cpu", stop: threading.Event | None = None) -> list[Classifier]:
    """The classifiers of cells prepared by `cells.prepare_cell` (CellInputs), trained as one batch; the same
    arguments as `cells.run_cell` hands to train_classifier."""
    jobs = []
    for inp in inputs:
        gen, only = inp.generated, inp.only_generated
        jobs.append(CellTraining(None if only else inp.x_lab, None if only else inp.y_soft, inp.cell.seed,
                                 inp.cell.shots, inp.cell.method, inp.params,
                                 None if gen is None else gen.x, None if gen is None else gen.y_soft,
                                 input_stats(inp.x_lab), inp.env.n_classes))
    return train_stacked(jobs, spec.classifier_recipe, device, stop)
