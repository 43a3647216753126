"""The protocol's classifier recipe: train one few-shot classifier, predict, score.

Every random draw comes from named streams (core.fewshot.streams): the initial weights from (seed, "init") —
the same for every method and shot count of a seed —, the order of the real examples and the dropout masks
from (seed, shots) — shared by every method of the cell —, everything a method draws from its own stream.
Each step takes `batch_size` real examples (all of them when fewer: the real shots are seen equally often by
every method); a method with generated examples adds round(gen_ratio * real) of them to the batch (drawn from
its expanded set, or made from the batch by an online method), then the batch transforms run on the whole batch.

What a classifier trains on is a `TrainingData`, whose streams and method shape its batches a `MethodRun`;
`BatchStream` draws its batches step by step, `build_model` and `Objective` make its network and its loss.
`fit_classifier` trains one; core.fewshot.batched trains several of one shape as one stacked model from the
same pieces, so a batch of cells sees exactly the inputs the single cells see.
"""
from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augment import AUGMENTATIONS, augment, context_for, parse_method, tta_predict
from core.fewshot.generators import check_stop
from core.fewshot.spec import Recipe
from core.fewshot.streams import stream
from core.isda import ClassCovariance, isda_lambda, isda_loss
from core.models.classifier import Classifier, build_classifier
from core.models.init import set_rng


@dataclass(frozen=True)
class TrainingData:
    """What one classifier trains on. x, y: the real labelled examples (N, *shape) and their soft labels (N, C);
    x_gen, y_gen: the method's generated examples (M, *shape), (M, C), or None; x = None trains on the generated
    examples only (Bonn "only generated data"). stats: (mean, std) for input standardisation (default: from x)."""
    x: Tensor | None
    y: Tensor | None
    x_gen: Tensor | None = None
    y_gen: Tensor | None = None
    stats: tuple[Tensor, Tensor] | None = None
    n_classes: int | None = None

    def __post_init__(self):
        if self.x is None and self.x_gen is None:
            raise ValueError("nothing to train on: give real examples, generated ones or both")

    @property
    def like(self) -> Tensor:
        """The rows that fix the input shape and the default statistics."""
        return self.x if self.x is not None else self.x_gen

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.like.shape[1:])

    @property
    def classes(self) -> int:
        return self.n_classes or (self.y if self.y is not None else self.y_gen).shape[1]


@dataclass(frozen=True)
class MethodRun:
    """Whose named streams a classifier draws from (seed, shots) and the method that shapes its batches, with its
    parameters {augmentation: {param: value}} and what the cell's hooks gave it {augmentation: {keyword: value}}."""
    seed: int
    shots: int
    method: str = "none"
    params: dict = field(default_factory=dict, hash=False)
    context: dict = field(default_factory=dict, hash=False)


class _Cycle:
    """Indices into n rows, a fresh permutation from `gen` each pass (an epoch over the data)."""

    def __init__(self, n: int, gen: torch.Generator, device):
        self.n, self.gen, self.device = n, gen, device
        self.order = torch.empty(0, dtype=torch.long, device=device)

    def take(self, k: int) -> Tensor:
        while len(self.order) < k:
            self.order = torch.cat([self.order, torch.randperm(self.n, generator=self.gen).to(self.device)])
        idx, self.order = self.order[:k], self.order[k:]
        return idx


class BatchStream:
    """One classifier's training batches, step by step, from its own named streams: real rows in the
    (seed, shots, "real-order") order, generated rows in the (seed, shots, method, "gen-order") order, online rows
    and batch transforms drawn from (seed, shots, method, "augment")."""

    def __init__(self, data: TrainingData, recipe: Recipe, run: MethodRun, device="cpu"):
        self.data, self.run = data, run
        self.online = [a for a in parse_method(run.method) if a.stage == "online"]
        # online functions that read the classifier being trained (fixmatch's pseudo-labels): passed at each step
        self.wants_classifier = ["classifier" in inspect.signature(a.fn).parameters for a in self.online]
        if self.online and data.x is None:
            raise ValueError(f"{run.method} makes its examples from the real batch: it cannot run on generated "
                             "data only")
        x, x_gen = data.x, data.x_gen
        self.real = _Cycle(len(x), stream(run.seed, run.shots, "real-order"), device) if x is not None else None
        self.gen = (_Cycle(len(x_gen), stream(run.seed, run.shots, run.method, "gen-order"), device)
                    if x_gen is not None else None)
        self.rng = stream(run.seed, run.shots, run.method, "augment", device=device)
        self.bs_real = min(recipe.batch_size, len(x)) if x is not None else 0
        self.bs_gen = (max(1, round(recipe.gen_ratio * self.bs_real)) if x is not None
                       else min(recipe.batch_size, len(x_gen)))

    def next(self, classifier=None) -> tuple[Tensor, Tensor]:
        """The next batch: (B, *shape) inputs, (B, C) soft labels. classifier: the model being trained, for online
        methods that read it (fixmatch)."""
        d, run = self.data, self.run
        xs, ys = [], []
        if self.real is not None:
            idx = self.real.take(self.bs_real)
            xs.append(d.x[idx])
            ys.append(d.y[idx])
        if self.gen is not None:
            idx = self.gen.take(self.bs_gen)
            xs.append(d.x_gen[idx])
            ys.append(d.y_gen[idx])
        for a, wants in zip(self.online, self.wants_classifier):   # e.g. lsi-online: new rows from the real rows
            own = {"classifier": classifier} if wants else {}
            xo, yo = a(xs[0], ys[0], self.rng, n=self.bs_gen, **context_for(a, run.context), **own,
                       **run.params.get(a.name, {}))
            xs.append(xo)
            ys.append(yo)
        xb, yb = (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
        return augment(run.method, xb, yb, self.rng, stage="batch", params=run.params)


def input_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """One mean / std per channel of images (the real shots' statistics: no pool data). Vectors are standardised
    by the data loader already (and codes are the encoder's own scale): they get each feature's mean / std."""
    if x.ndim == 4:
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return mean, std
    return x.mean(0), x.std(0).nan_to_num(1.0).clamp_min(1e-3)


def build_model(data: TrainingData, recipe: Recipe, run: MethodRun, device="cpu") -> Classifier:
    """The recipe's classifier for this data, its initial weights from (seed, "init", input shape): the same for
    every method and shot count of a seed."""
    stats = (data.stats if data.stats is not None else input_stats(data.like)) if recipe.standardise else None
    mean, std = stats if stats is not None else (None, None)
    return build_classifier(data.input_shape, data.classes, seed=stream(run.seed, "init", data.input_shape),
                            width=recipe.width, feature_dim=recipe.feature_dim, dropout=recipe.dropout,
                            input_mean=mean, input_std=std,
                            channels_last=recipe.channels_last).to(device)


def optimizer(params, recipe: Recipe):
    """(AdamW, its learning-rate schedule or None). foreach=True: the multi-tensor kernels, bit-identical to the
    per-tensor loop on the CPU (checked over 300 one-cycle steps) with fewer calls per step."""
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True)
    if recipe.schedule == "onecycle":
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps)
    if recipe.schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.steps)
    return opt, None


class Objective:
    """A step's loss from the features (B, D), the soft labels (B, C) and the head's weight (C, D) and bias (C,):
    cross-entropy on soft labels, or ISDA's surrogate (a method with an "isda" part: its running class
    covariance of the features, lambda ramped over the steps)."""

    def __init__(self, run: MethodRun, n_classes: int, feature_dim: int, steps: int, device="cpu"):
        isda = next((a for a in parse_method(run.method) if a.name == "isda"), None)
        self.steps, self.isda = steps, None
        if isda is not None:
            self.isda = {**isda.defaults, **run.params.get("isda", {})}
            self.cov = ClassCovariance(n_classes, feature_dim, diagonal=self.isda["diagonal"], device=device)

    def __call__(self, feats: Tensor, yb: Tensor, weight: Tensor, bias: Tensor, t: int) -> Tensor:
        if self.isda is None:
            return -(yb * F.log_softmax(F.linear(feats, weight, bias), dim=1)).sum(1).mean()
        self.cov.update(feats, yb.argmax(1))
        return isda_loss(feats, yb, weight, bias, self.cov.cov, isda_lambda(t, self.steps, self.isda["lambda_0"]))


def fit_classifier(data: TrainingData, recipe: Recipe, run: MethodRun, *, device="cpu",
                   stop: threading.Event | None = None) -> Classifier:
    """Train the recipe's classifier on `data` with `run`'s streams and method; returns it in eval mode. `stop`
    is checked before every step (core.fewshot.generators.Stopped)."""
    model = build_model(data, recipe, run, device)
    opt, sched = optimizer(model.parameters(), recipe)
    batches = BatchStream(data, recipe, run, device)
    objective = Objective(run, data.classes, model.feature_dim, recipe.steps, device)
    set_rng(model, stream(run.seed, run.shots, "dropout", device=device))
    model.train()
    try:
        for t in range(recipe.steps):
            check_stop(stop)
            xb, yb = batches.next(model)
            loss = objective(model.features(xb), yb, model.head.weight, model.head.bias, t)     # features (B, D)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    finally:
        set_rng(model, None)
    return model.eval()


def train_classifier(x: Tensor | None, y: Tensor | None, recipe: Recipe, *, seed: int, shots: int,
                     method: str = "none", params: dict | None = None, x_gen: Tensor | None = None,
                     y_gen: Tensor | None = None, context: dict | None = None, stats: tuple | None = None,
                     n_classes: int | None = None, device="cpu", stop: threading.Event | None = None):
    """fit_classifier with the arguments spelled out (the form callers used before TrainingData / MethodRun:
    cells.run_cell, CellEnv.train_on, core.saliency; remove once they pass the dataclasses)."""
    return fit_classifier(TrainingData(x, y, x_gen, y_gen, stats, n_classes), recipe,
                          MethodRun(seed, shots, method, params or {}, context or {}), device=device, stop=stop)


def budget(recipe: Recipe, n_real: int) -> dict:
    """The budget in steps and in epochs over the real labelled data."""
    bs = min(recipe.batch_size, n_real) if n_real else 0
    return {"steps": recipe.steps, "real_per_batch": bs, "epochs_real": recipe.steps * bs / n_real if n_real else 0.0}


@torch.no_grad()
def predict_proba(model, x: Tensor, tta: bool = False, n_views: int = 5, batch_size: int = 1000) -> Tensor:
    out = []
    for xb in x.split(batch_size):
        out.append(tta_predict(model, xb, n_views) if tta else torch.softmax(model(xb), 1))
    return torch.cat(out)


def tta_views_default() -> int:
    return AUGMENTATIONS["tta"].defaults["n_views"]


def scores(y_true: Tensor, y_pred: Tensor) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    t, p = y_true.cpu().numpy(), y_pred.cpu().numpy()
    return {"accuracy": float(accuracy_score(t, p)), "f1_weighted": float(f1_score(t, p, average="weighted")),
            "f1_macro": float(f1_score(t, p, average="macro"))}
