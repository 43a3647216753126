"""The protocol's classifier recipe: train one few-shot classifier, predict, score.

Every random draw comes from named streams (core.fewshot.streams): the initial weights from (seed, "init") —
the same for every method and shot count of a seed —, the order of the real examples and the dropout masks
from (seed, shots) — shared by every method of the cell —, everything a method draws from its own stream.
Each step takes `batch_size` real examples (all of them when fewer: the real shots are seen equally often by
every method); a method with generated examples adds round(gen_ratio * real) of them to the batch (drawn from
its expanded set, or made from the batch by an online method), then the batch transforms run on the whole batch.
"""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augment import AUGMENTATIONS, augment, context_for, parse_method, tta_predict
from core.fewshot.generators import check_stop
from core.fewshot.spec import Recipe
from core.fewshot.streams import stream
from core.isda import ClassCovariance, isda_lambda, isda_loss
from core.models.classifier import build_classifier
from core.models.init import set_rng


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


def _schedule(opt, recipe: Recipe):
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.steps)
    return None


def input_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """One mean / std per channel of images (the real shots' statistics: no pool data). Vectors are standardised
    by the data loader already (and codes are the encoder's own scale): they get each feature's mean / std."""
    if x.ndim == 4:
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return mean, std
    return x.mean(0), x.std(0).nan_to_num(1.0).clamp_min(1e-3)


def train_classifier(x: Tensor | None, y: Tensor | None, recipe: Recipe, *, seed: int, shots: int,
                     method: str = "none", params: dict | None = None, x_gen: Tensor | None = None,
                     y_gen: Tensor | None = None, context: dict | None = None, stats: tuple | None = None,
                     n_classes: int | None = None, device="cpu", stop: threading.Event | None = None):
    """Train the recipe's classifier. x, y: the real labelled examples (soft labels (N, C)); x_gen, y_gen: the
    method's generated examples (or None); x = None trains on the generated examples only (Bonn "only generated
    data"). stats: (mean, std) for input standardisation (default: from x). Returns the model in eval mode."""
    params, context = params or {}, context or {}
    parts = {a.name: a for a in parse_method(method)}
    online = [a for a in parts.values() if a.stage == "online"]
    if x is None and x_gen is None:
        raise ValueError("nothing to train on: give real examples, generated ones or both")
    like = x if x is not None else x_gen
    n_classes = n_classes or (y if y is not None else y_gen).shape[1]
    if online and x is None:
        raise ValueError(f"{method} makes its examples from the real batch: it cannot run on generated data only")
    mean, std = (stats if stats is not None else input_stats(like)) if recipe.standardise else (None, None)
    model = build_classifier(tuple(like.shape[1:]), n_classes, seed=stream(seed, "init", tuple(like.shape[1:])),
                             width=recipe.width, feature_dim=recipe.feature_dim, dropout=recipe.dropout,
                             input_mean=mean, input_std=std).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True)
    sched = _schedule(opt, recipe)
    real = _Cycle(len(x), stream(seed, shots, "real-order"), device) if x is not None else None
    gen = _Cycle(len(x_gen), stream(seed, shots, method, "gen-order"), device) if x_gen is not None else None
    rng = stream(seed, shots, method, "augment", device=device)
    set_rng(model, stream(seed, shots, "dropout", device=device))
    isda = parts.get("isda")
    if isda:
        p = {**isda.defaults, **params.get("isda", {})}
        est = ClassCovariance(n_classes, model.feature_dim, diagonal=p["diagonal"], device=device)
    bs_real = min(recipe.batch_size, len(x)) if x is not None else 0
    bs_gen = (max(1, round(recipe.gen_ratio * bs_real)) if x is not None else min(recipe.batch_size, len(x_gen)))
    model.train()
    try:
        for t in range(recipe.steps):
            check_stop(stop)
            xs, ys = [], []
            if real is not None:
                idx = real.take(bs_real)
                xs.append(x[idx])
                ys.append(y[idx])
            if gen is not None:
                idx = gen.take(bs_gen)
                xs.append(x_gen[idx])
                ys.append(y_gen[idx])
            for a in online:                                  # e.g. lsi-online: new rows from this batch's real rows
                xo, yo = a(xs[0], ys[0], rng, n=bs_gen, **context_for(a, context), **params.get(a.name, {}))
                xs.append(xo)
                ys.append(yo)
            xb, yb = augment(method, torch.cat(xs), torch.cat(ys), rng, stage="batch", params=params)
            feats = model.features(xb)                                                       # (B, D)
            if isda:
                est.update(feats, yb.argmax(1))
                loss = isda_loss(feats, yb, model.head.weight, model.head.bias, est.cov,
                                 isda_lambda(t, recipe.steps, p["lambda_0"]))
            else:
                loss = -(yb * F.log_softmax(model.head(feats), dim=1)).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    finally:
        set_rng(model, None)
    return model.eval()


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
