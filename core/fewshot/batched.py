"""Batched cells: K few-shot classifiers of one shape trained as one stacked model (torch.func).

Each classifier keeps everything single training gives it (core.fewshot.recipe): its initial weights
(`build_model`, from (seed, "init")), its batches (`BatchStream`: the real order, the generated order, online rows
and batch transforms from its own named streams) and its dropout masks (drawn from its own (seed, shots,
"dropout") stream by `SeededDropout.draw_mask`, the shape and order a single forward draws). Only the arithmetic
is stacked: the K parameter sets are stacked along a leading dimension (`stack_module_state`), one vmapped
`functional_call` computes the K feature batches (vmap turns the K convolutions into one grouped convolution),
the K losses (each cell's own `Objective`: cross-entropy, or ISDA with its own class covariance) are summed — the
gradient of a sum gives every slice its own gradient — and one AdamW, element-wise, steps every slice as its own
optimizer would. The inputs are the single cells' inputs exactly; the summation order of the batched kernels is
not, so the weights drift apart by rounding (measured in tests/test_batched.py). Inside vmap the convolutions run
in NCHW layout whatever the recipe's channels_last (vmap has no memory formats).

When it pays (bench/batched_cells.py): on a GPU, where one small CNN leaves the device idle. On one CPU thread it
does not: grouped convolutions are no faster than K small ones there (the 1 -> 16 channel one is 2x slower), so
the runner batches cells only on CUDA unless told otherwise (core.fewshot.runner, `batch`).

A batch is one unit of training: `stop` is checked before every step, and a stop raises Stopped with no model of
the batch trained. `run_batch` then scores the cells one by one, handing each record to `on_record` as soon as it
is complete, and checks `stop` between them: a stop while scoring keeps the records already handed over.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from core.fewshot.generators import check_stop
from core.fewshot.kernels import apply as apply_kernel_pin, machine
from core.fewshot.recipe import (BatchStream, MethodRun, Objective, TrainingData, build_model, input_stats,
                                 optimizer)
from core.fewshot.spec import Recipe
from core.fewshot.streams import stream
from core.models.classifier import Classifier, MaxPool2dCL
from core.models.init import SeededDropout


class _Features(nn.Module):
    """classifier.features(x, keep) as a module's forward, for functional_call (the parameters keep their
    names under "clf.")."""

    def __init__(self, clf: Classifier):
        super().__init__()
        self.clf = clf

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        return self.clf.features(x, keep)


def _vmap_safe(clf: Classifier) -> Classifier:
    """A copy on the meta device for functional_call under vmap: vmap cannot query memory formats, so the
    layout-switching max pool becomes PyTorch's own (the same values and gradients) and the model computes
    in NCHW."""
    base = copy.deepcopy(clf).to("meta")
    base.channels_last = False
    for i, layer in enumerate(base.body):
        if isinstance(layer, MaxPool2dCL):
            base.body[i] = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                        ceil_mode=layer.ceil_mode)
    return base


def shape_key(data: TrainingData, recipe: Recipe, run: MethodRun) -> tuple:
    """What classifiers trained in one batch must share: the input shape, the classes, the rows per step (real,
    generated, online) and whether inputs are standardised. Cells of one (shots, n_generated, method) and any
    seeds share it unless a method generated no rows for one of them."""
    batches = BatchStream(data, recipe, run)
    return (data.input_shape, data.classes, batches.bs_real if data.x is not None else 0,
            batches.bs_gen if data.x_gen is not None else 0, len(batches.online), recipe.standardise)


def fit_batch(items: Sequence[tuple[TrainingData, MethodRun]], recipe: Recipe, *, device="cpu",
              stop: threading.Event | None = None) -> list[Classifier]:
    """Train one classifier per (TrainingData, MethodRun) as one stacked model; returns them in eval mode, in
    order. All must share `shape_key` (ValueError otherwise). `stop` is checked before every step (Stopped)."""
    if not items:
        return []
    if len(items) == 1:
        # vmap over one model runs the ungrouped kernels, another rounding than any batch of two or more (whose
        # slices agree bit for bit, tests/test_batched.py): a lone cell trains beside its twin, so its record is
        # the same whichever batch it falls in (the last few seeds of a resumed run)
        return fit_batch([items[0], items[0]], recipe, device=device, stop=stop)[:1]
    keys = {shape_key(d, recipe, r) for d, r in items}
    if len(keys) != 1:
        raise ValueError(f"batched cells need one shape (inputs, classes, rows per step); got {sorted(map(str, keys))}"
                         "; group cells by shots, n_generated and method")
    models = [build_model(d, recipe, r, device) for d, r in items]
    streams = [BatchStream(d, recipe, r, device) for d, r in items]
    objectives = [Objective(r, d.classes, models[0].feature_dim, recipe.steps, device) for d, r in items]
    masks = [stream(r.seed, r.shots, "dropout", device=device) for _, r in items]
    dropout: SeededDropout = models[0].proj[2]
    params, buffers = stack_module_state([_Features(m) for m in models])        # {name: (K, *shape)}
    base = _Features(_vmap_safe(models[0]))
    feats_of = vmap(lambda p, b, x, keep: functional_call(base, (p, b), (x, keep)),
                    in_dims=(0, 0, 0, 0 if dropout.p > 0 else None))
    weight, bias = params["clf.head.weight"], params["clf.head.bias"]            # (K, C, D), (K, C)
    plain = all(o.isda is None for o in objectives)
    opt, sched = optimizer(list(params.values()), recipe)
    for t in range(recipe.steps):
        check_stop(stop)
        batches = [s.next() for s in streams]
        xb = torch.stack([b[0] for b in batches])                                  # (K, B, *shape)
        yb = torch.stack([b[1] for b in batches])                                  # (K, B, C)
        keep = (torch.stack([dropout.draw_mask((xb.shape[1], models[0].feature_dim), g, xb.device)
                             for g in masks]) if dropout.p > 0 else None)           # (K, B, D)
        feats = feats_of(params, buffers, xb, keep)                                # (K, B, D)
        if plain:                                                                  # cross-entropy, all K at once
            logits = torch.baddbmm(bias[:, None, :], feats, weight.transpose(1, 2))  # (K, B, C)
            loss = -(yb * F.log_softmax(logits, dim=2)).sum(2).mean(1).sum()
        else:
            loss = sum(o(feats[k], yb[k], weight[k], bias[k], t) for k, o in enumerate(objectives))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    with torch.no_grad():                                                          # slice k -> classifier k
        for k, m in enumerate(models):
            for name, p in m.named_parameters():
                p.copy_(params["clf." + name][k])
    return [m.eval() for m in models]


# ------------------------------------------------------------------------------------------------ cells

def training_inputs(inputs) -> tuple[TrainingData, MethodRun]:
    """What `cells.run_cell` hands the trainer for a prepared cell (`cells.prepare_cell` -> CellInputs): the shots
    (none when the cell trains on generated rows only), the generated rows, the shots' statistics."""
    gen, only, cell = inputs.generated, inputs.only_generated, inputs.cell
    data = TrainingData(None if only else inputs.x_lab, None if only else inputs.y_soft,
                        None if gen is None else gen.x, None if gen is None else gen.y_soft,
                        input_stats(inputs.x_lab), inputs.env.n_classes)
    return data, MethodRun(cell.seed, cell.shots, cell.method, inputs.params, inputs.context)


def run_batch(spec, cells: Sequence, run_dir, device="cpu", stop: threading.Event | None = None,
              on_record: Callable[[dict], None] | None = None, worker: str = "") -> list[dict]:
    """The records of `cells` (core.fewshot.spec.Cell; best of one shots, n_generated and method, any seeds),
    their classifiers trained as stacked models (one per shape_key). Records are those of cells.run_cell but
    for the rounding of the batched arithmetic, plus "batch": how many cells were trained together; "seconds"
    is the cell's share of preparing and training plus its own scoring. on_record(record) gets each record once
    it is complete; a stop raises Stopped (during training: no record; while scoring: after those handed over)."""
    from core.fewshot.cells import cell_record, prepare_cell

    t0 = time.perf_counter()
    apply_kernel_pin()
    prepared = [prepare_cell(spec, c, run_dir, device, stop) for c in cells]
    recipe = spec.recipe_for(prepared[0].cell.method) if prepared else spec.classifier_recipe   # one method a batch
    items = [training_inputs(p) for p in prepared]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, (data, run) in enumerate(items):
        groups[shape_key(data, recipe, run)].append(i)
    models: dict[int, Classifier] = {}
    for members in groups.values():
        trained = fit_batch([items[i] for i in members], recipe, device=device, stop=stop)
        models.update(zip(members, trained))
    shared = (time.perf_counter() - t0) / len(cells)
    records = []
    for i, inputs in enumerate(prepared):
        check_stop(stop)
        t1 = time.perf_counter()
        record = cell_record(spec, inputs, inputs.predict(models[i], inputs.x_eval))
        record.update({"seconds": shared + time.perf_counter() - t1, "device": str(device), "worker": worker, **machine(),
                       "batch": len(next(g for g in groups.values() if i in g))})
        records.append(record)
        if on_record is not None:
            on_record(record)
    return records
