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
from typing import Callable

import torch
from torch import Tensor

from core.augment import augment, expand, parse_method
from core.augment.generated import Generated
from core.data import Dataset, fewshot_split, load_dataset
from core.fewshot.context import CellEnv, eval_inputs
from core.fewshot.generators import GENERATORS, soft_targets
from core.fewshot.kernels import MACHINE_KEYS, apply as apply_kernel_pin, machine
from core.fewshot.methods import data_mark
from core.fewshot.recipe import budget, input_stats, predict_proba, scores, train_classifier
from core.fewshot.spec import Cell, ExperimentSpec
from core.fewshot.streams import stream

VALIDATION_SEED, HELD_OUT_SEED = 54321, 12345
# the only record keys that may differ between two runs of a cell: the timing, where it ran and on which CPU kernel
# path (core.fewshot.kernels: two paths round differently, so the other keys agree only where these do)
TIMING_KEYS = ("seconds", "device", "worker", *MACHINE_KEYS)


@dataclass
class Splits:
    train: Dataset          # shots and the unlabelled pool come from here
    validation: Dataset
    test: Dataset
    train_rows: Tensor      # (len(train),) the row of load_dataset(dataset) each training row is

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
    test = test or (dataset if dataset.startswith("upload:") else None)  # an upload's test part: carved once, stored
    if test:
        test_set = load_dataset(test, train=False)
        if test_set.input_shape != data.input_shape:
            raise ValueError(f"test set {test} has inputs {test_set.input_shape}, but {dataset} has "
                             f"{data.input_shape}; give a test set of the same kind")
        return Splits(rest, validation_set, test_set, rest_idx)
    counts = torch.bincount(rest.y)
    per_class = int(counts[counts > 0].min() * held_out)
    if per_class < 1:
        raise ValueError(f"{dataset} is too small for a held-out share of {held_out}; give --test")
    test_idx, train_idx = fewshot_split(rest.y, per_class, HELD_OUT_SEED)
    return Splits(rest.subset(train_idx), validation_set, rest.subset(test_idx), rest_idx[train_idx])


def load_splits(spec: ExperimentSpec) -> Splits:
    """(train, validation, test), cached per process (workers load each data set once)."""
    return _splits(spec.dataset, spec.test, spec.validation, spec.held_out)


def generator_data(spec: ExperimentSpec, splits: Splits, name: str, seed: int, shots: int) -> Dataset:
    if GENERATORS[name].scope == "pool" and spec.gen_data == "pool":
        return splits.train
    lab_idx, _ = fewshot_split(splits.train.y, shots, seed)
    return splits.train.subset(lab_idx)


@dataclass
class CellInputs:
    """Everything a cell's classifier is trained and scored on, before training: what `run_cell` hands to the
    trainer (and what the export reproduces: `generated` are the rows the cell trains on)."""
    cell: Cell
    env: CellEnv
    x_lab: Tensor                   # (N, *shape) the shots (or their codes for a "represent" method)
    y_soft: Tensor                  # (N, C)
    generated: Generated | None     # the method's expand-stage rows with provenance, on the device
    x_eval: Tensor                  # (E, *shape)
    y_eval: Tensor                  # (E,)
    params: dict                    # {augmentation: {param: value}} with n_per set from n_generated
    context: dict                   # {augmentation: {keyword: value}} from the hooks
    only_generated: bool
    predict: Callable               # predict(model, x) -> (E, C) probabilities (an eval hook, or softmax)


def prepare_cell(spec: ExperimentSpec, cell: Cell, run_dir, device="cpu",
                 stop: threading.Event | None = None) -> CellInputs:
    """A cell's inputs: the shots, the method's generated rows (its expand parts, from the cell's named stream),
    the evaluation set, and the hooks' context. Names no method: every difference is a registered hook."""
    cell = Cell(*cell)
    splits = load_splits(spec)
    evaluation = splits.evaluation(spec)
    env = CellEnv(spec, cell, splits.train, run_dir, device, stop)
    n_classes = env.n_classes
    x_lab, y_soft = env.x_lab, soft_targets(env.y_lab, n_classes)
    ctx = env.method_context(cell.method)
    parts = parse_method(cell.method)
    x_eval = eval_inputs(evaluation.x, device)
    for a in parts:                                        # latent-probe: codes instead of pixels
        if a.stage == "represent":
            x_lab, _ = augment(a.name, x_lab, y_soft, None, stage="represent", context=ctx)
            x_eval, _ = augment(a.name, x_eval, soft_targets(evaluation.y, n_classes), None, stage="represent",
                                context=ctx)
    params = cell_params(spec, cell)
    generated = generate_rows(cell, x_lab, y_soft, params, ctx)
    only_generated = spec.generated_only and cell.n_generated is not None and generated is not None
    return CellInputs(cell, env, x_lab, y_soft, generated, x_eval, evaluation.y, params, ctx, only_generated,
                      _predictor(parts, spec))


def cell_params(spec: ExperimentSpec, cell: Cell) -> dict:
    """{augmentation: {param: value}}: the method's tuned parameters (spec.tuned), the spec's parameters on top,
    with n_per of every expander set to the cell's n_generated."""
    params = {name: dict(p) for name, p in spec.tuned_params(cell.method).items()}
    for name, p in spec.params.items():
        params[name] = {**params.get(name, {}), **p}
    if cell.n_generated is not None:
        for a in parse_method(cell.method):
            if a.stage == "expand":
                params.setdefault(a.name, {})["n_per"] = cell.n_generated
    return params


def generate_rows(cell: Cell, x_lab: Tensor, y_soft: Tensor, params: dict, context: dict) -> Generated | None:
    """The rows a cell's method generates before training, with their provenance, from the cell's own named
    stream: the few-shot cell trains on them and `python -m core augment` writes them (one function, so an
    export is what a cell trains on). None when the method generates nothing."""
    generated = expand(cell.method, x_lab, y_soft, stream(cell.seed, cell.shots, cell.n_generated, cell.method,
                                                          "expand"), params=params, context=context)
    if generated is None or not len(generated):
        return None
    return generated.to(x_lab.device, x_lab.dtype)


def _predictor(parts, spec: ExperimentSpec) -> Callable:
    """The eval-stage hook of the method (tta: averaged views), else the plain softmax."""
    for a in parts:
        if a.stage == "eval" and a.predict is not None:
            p = {**a.defaults, **spec.params.get(a.name, {})}
            return lambda model, x, a=a, p=p: a.predict(model, x, **p)
    return predict_proba


def run_cell(spec: ExperimentSpec, cell: Cell, run_dir, device="cpu", stop: threading.Event | None = None,
             worker: str = "") -> dict:
    t0 = time.perf_counter()
    apply_kernel_pin()                                  # --deterministic: this worker too
    inputs = prepare_cell(spec, cell, run_dir, device, stop)
    recipe = spec.recipe_for(cell.method)
    gen = inputs.generated
    only = inputs.only_generated
    model = train_classifier(None if only else inputs.x_lab, None if only else inputs.y_soft, recipe,
                             seed=cell.seed, shots=cell.shots, method=cell.method, params=inputs.params,
                             x_gen=None if gen is None else gen.x, y_gen=None if gen is None else gen.y_soft,
                             context=inputs.context, stats=input_stats(inputs.x_lab), n_classes=inputs.env.n_classes,
                             device=device, stop=stop)
    proba = inputs.predict(model, inputs.x_eval)
    record = cell_record(spec, inputs, proba)
    record.update({"seconds": time.perf_counter() - t0, "device": str(device), "worker": worker, **machine()})
    return record


def cell_record(spec: ExperimentSpec, inputs: CellInputs, proba: Tensor) -> dict:
    """The record of a trained cell from its inputs and its predicted probabilities on the evaluation set
    (all keys but the timing ones, which the caller adds)."""
    cell, env, gen, only = inputs.cell, inputs.env, inputs.generated, inputs.only_generated
    n_lab = len(inputs.x_lab)
    record = {"dataset": spec.dataset, "evaluated_on": _eval_name(spec), "method": cell.method,
              "data": data_mark(cell.method, spec.gen_data), "shots": cell.shots, "n_generated": cell.n_generated,
              "seed": cell.seed, "n_labelled": n_lab, "n_added": 0 if gen is None else len(gen),
              "trained_on": "generated" if only else "real" if gen is None else "real+generated",
              **budget(spec.recipe_for(cell.method), 0 if only else n_lab), "n_eval": len(inputs.y_eval),
              **scores(inputs.y_eval, proba.argmax(1).cpu())}
    if gen is not None and gen.origin == "pool":
        # distill, label-spread: a diagnostic only, the pool's labels trained nothing (not scored when another
        # expand method's generated rows are mixed in: they are not pool rows)
        truth = env.train.y[env.pool_idx]
        record["pseudo_label_accuracy"] = float((gen.y_soft.argmax(1).cpu() == truth[gen.source]).float().mean())
    for own in inputs.context.values():           # an online method's pseudo-labels (fixmatch): rate, and accuracy
        log = own.get("pseudo_log") if isinstance(own, dict) else None   # against the pool's truth (diagnostic only)
        if log is not None:
            record.update(log.summary(env.train.y[env.pool_idx]))
    record.update(env.generator_health())
    if spec.setting_of(cell.method) is not None:         # a run with tuned settings: which one this cell ran
        record["setting"] = spec.setting_of(cell.method)
    return record


def _eval_name(spec: ExperimentSpec) -> str:
    if spec.evaluate_on == "validation":
        return f"validation {spec.validation}"
    return spec.test or f"held-out {spec.held_out}"
