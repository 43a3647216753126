"""One few-shot cell: (seed, shots, n_generated, method) -> a plain record.

Data: the training data set minus a fixed validation share per class (never a shot, never in the pool); the
shots are drawn from the rest by `fewshot_split(y, shots, seed)` (the same shots for every method of a seed,
nested as k grows); the unlabelled pool is the rest of the training split (labels never used, except to
report how accurate the pseudo-labels of distillation and label spreading were). Evaluation on the test set
given, a held-out share, or — for choosing settings — the validation split.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from core.augment import augment, method_needs, parse_method, tta_predict
from core.data import Dataset, fewshot_split, load_dataset
from core.fewshot.generators import (GENERATORS, GCConfig, gc_training_set, generator_config, load_generator,
                                     soft_targets)
from core.fewshot.methods import data_mark
from core.fewshot.recipe import budget, input_stats, predict_proba, scores, train_classifier, tta_views_default
from core.fewshot.spec import ExperimentSpec
from core.fewshot.streams import stream

VALIDATION_SEED, HELD_OUT_SEED = 54321, 12345
TIMING_KEYS = ("seconds", "device", "worker")   # the only record keys that may differ between two runs of a cell


@dataclass
class Splits:
    train: Dataset          # shots and the unlabelled pool come from here
    validation: Dataset
    test: Dataset

    def evaluation(self, spec: ExperimentSpec) -> Dataset:
        return self.validation if spec.evaluate_on == "validation" else self.test


@lru_cache(maxsize=4)
def _splits(dataset: str, test: str | None, validation: float, held_out: float) -> Splits:
    data = load_dataset(dataset)
    counts = torch.bincount(data.y)
    per_class = int(counts[counts > 0].min() * validation)
    if per_class < 1:
        raise ValueError(f"{dataset} is too small for a validation share of {validation}")
    val_idx, rest_idx = fewshot_split(data.y, per_class, VALIDATION_SEED)
    rest, validation_set = data.subset(rest_idx), data.subset(val_idx)
    if test:
        test_set = load_dataset(test, train=False)
        if test_set.input_shape != data.input_shape:
            raise ValueError(f"test set {test} has inputs {test_set.input_shape}, but {dataset} has "
                             f"{data.input_shape}; give a test set of the same kind")
        return Splits(rest, validation_set, test_set)
    counts = torch.bincount(rest.y)
    per_class = int(counts[counts > 0].min() * held_out)
    if per_class < 1:
        raise ValueError(f"{dataset} is too small for a held-out share of {held_out}; give --test")
    test_idx, train_idx = fewshot_split(rest.y, per_class, HELD_OUT_SEED)
    return Splits(rest.subset(train_idx), validation_set, rest.subset(test_idx))


def load_splits(spec: ExperimentSpec) -> Splits:
    """(train, validation, test), cached per process (workers load each data set once)."""
    return _splits(spec.dataset, spec.test, spec.validation, spec.held_out)


def generator_key(name: str, seed: int, shots: int, gen_data: str) -> str:
    """Folder name of a trained generator under <run>/generators/: pool generators once per seed, generators
    trained on labelled shots once per (seed, shots)."""
    on_pool = GENERATORS[name].scope == "pool" and gen_data == "pool"
    return f"{name}-{'pool' if on_pool else f'k{shots}'}-s{seed}"


def generator_data(spec: ExperimentSpec, splits: Splits, name: str, seed: int, shots: int) -> Dataset:
    if GENERATORS[name].scope == "pool" and spec.gen_data == "pool":
        return splits.train
    lab_idx, _ = fewshot_split(splits.train.y, shots, seed)
    return splits.train.subset(lab_idx)


def _context(spec, splits, seed, shots, method, x_lab, y_lab, pool_idx, run_dir: Path, device, stop) -> dict:
    """What the method's parts take from the runner: trained generators (loaded from the run folder, so a
    cell gets the same weights in any worker), the GC and the distillation teacher (trained here), the pool."""
    ctx: dict = {}
    needs = method_needs(method)
    recipe = spec.classifier_recipe
    for name in sorted(needs):
        if GENERATORS[name].scope == "cell":
            continue
        models = load_generator(run_dir / "generators" / generator_key(name, seed, shots, spec.gen_data), device)
        if name == "multi-vae":
            ctx[name] = [models.get(f"class-{c}") for c in range(splits.train.n_classes)]
        else:
            ctx[name] = models["model"]
            ctx[f"{name}-parts"] = models
    if "gc" in needs:
        cfg: GCConfig = generator_config("gc", spec.generators)
        xg, yg = gc_training_set(x_lab, y_lab, ctx["vae-parts"]["early"], ctx["vae"], cfg, stream(seed, shots, "gc-data"))
        gc = train_classifier(xg, soft_targets(yg, splits.train.n_classes), recipe, seed=seed, shots=shots,
                              method="none", device=device, stop=stop)
        ctx["gc"] = lambda xb: torch.softmax(gc(xb), 1)
    parts = parse_method(method)
    if any(a.name == "distill" for a in parts):
        teacher = train_classifier(x_lab, soft_targets(y_lab, splits.train.n_classes), recipe, seed=seed,
                                   shots=shots, method="none", device=device, stop=stop)
        ctx["teacher"] = lambda xb: tta_predict(teacher, xb, tta_views_default())
    if any("pool" in a.inputs.values() for a in parts):     # distill, label-spread: the unlabelled pool's inputs
        ctx["pool"] = splits.train.x[pool_idx].to(device)
    return ctx


def run_cell(spec: ExperimentSpec, seed: int, shots: int, n_generated: int | None, method: str, run_dir,
             device="cpu", stop: threading.Event | None = None, worker: str = "") -> dict:
    t0 = time.perf_counter()
    splits = load_splits(spec)
    train, evaluation = splits.train, splits.evaluation(spec)
    n_classes = train.n_classes
    lab_idx, pool_idx = fewshot_split(train.y, shots, seed)
    x_lab, y_lab = train.x[lab_idx].to(device), train.y[lab_idx].to(device)
    y_soft = soft_targets(y_lab, n_classes)
    ctx = _context(spec, splits, seed, shots, method, x_lab, y_lab, pool_idx, Path(run_dir), device, stop)
    parts = {a.name: a for a in parse_method(method)}
    x_eval = evaluation.x.to(device)
    for a in parts.values():                               # latent-probe: codes instead of pixels
        if a.stage == "represent":
            x_lab, _ = augment(a.name, x_lab, y_soft, None, stage="represent", context=ctx)
            x_eval, _ = augment(a.name, x_eval, soft_targets(evaluation.y, n_classes), None, stage="represent",
                                context=ctx)
    params = {name: dict(p) for name, p in spec.params.items()}
    if n_generated is not None:
        for a in parts.values():
            if a.stage == "expand":
                params.setdefault(a.name, {})["n_per"] = n_generated
    x_aug, y_aug = augment(method, x_lab, y_soft, stream(seed, shots, n_generated, method, "expand"),
                           stage="expand", params=params, context=ctx)
    x_gen, y_gen = (x_aug[len(x_lab):], y_aug[len(x_lab):]) if len(x_aug) > len(x_lab) else (None, None)
    only_generated = spec.generated_only and n_generated is not None and x_gen is not None
    recipe = spec.classifier_recipe
    model = train_classifier(None if only_generated else x_lab, None if only_generated else y_soft, recipe,
                             seed=seed, shots=shots, method=method, params=params, x_gen=x_gen, y_gen=y_gen,
                             context=ctx, stats=input_stats(x_lab), n_classes=n_classes, device=device, stop=stop)
    n_views = {**parts["tta"].defaults, **spec.params.get("tta", {})}["n_views"] if "tta" in parts else 0
    proba = predict_proba(model, x_eval, tta="tta" in parts, n_views=n_views)
    record = {"dataset": spec.dataset, "evaluated_on": _eval_name(spec), "method": method,
              "data": data_mark(method, spec.gen_data), "shots": shots, "n_generated": n_generated, "seed": seed,
              "n_labelled": len(x_lab), "n_added": 0 if x_gen is None else len(x_gen),
              "trained_on": "generated" if only_generated else "real" if x_gen is None else "real+generated",
              **budget(recipe, 0 if only_generated else len(x_lab)), "n_eval": len(evaluation),
              **scores(evaluation.y, proba.argmax(1).cpu())}
    from_pool = [a for a in parts.values() if "pool" in a.inputs.values()]
    if from_pool and x_gen is not None and all(a.stage != "expand" or a in from_pool for a in parts.values()):
        # distill, label-spread: a diagnostic only, the pool's labels trained nothing (not scored when another
        # expand method's generated rows are mixed in: they are not pool rows)
        truth = train.y[pool_idx].to(device)
        chosen = _rows_in(train.x[pool_idx].to(device), x_gen)
        record["pseudo_label_accuracy"] = float((y_gen.argmax(1) == truth[chosen]).float().mean()) if len(chosen) else None
    for name in ("vae", "aae-uniform"):
        health = getattr(ctx.get(name), "fewshot_health", None)
        if health:
            record.update({f"{name}_{k}": v for k, v in health.items() if k in ("recon_mse", "z_std")})
    record.update({"seconds": time.perf_counter() - t0, "device": str(device), "worker": worker})
    return record


def _eval_name(spec: ExperimentSpec) -> str:
    if spec.evaluate_on == "validation":
        return f"validation {spec.validation}"
    return spec.test or f"held-out {spec.held_out}"


def _rows_in(pool: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Index in `pool` of each of `rows` (rows are copies of pool rows)."""
    flat_pool, flat_rows = pool.flatten(1), rows.flatten(1)
    return torch.cdist(flat_rows, flat_pool).argmin(1)
