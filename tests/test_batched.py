"""Batched cells (core/fewshot/batched.py) against single cells (recipe.fit_classifier).

A batch trains every classifier on exactly the inputs its single cell sees (the same named streams); only the
summation order of the stacked kernels differs. Measured on the 2-core CPU box (one thread):
- digits (8x8), 5 shots, 3 seeds, 40 steps: largest difference of final weights 2.9e-7 (none), 2.2e-7
  (classic), 2.1e-6 (isda); of predicted probabilities 4e-8 to 9e-8; the same predicted classes.
- mnist5k (28x28), 5 shots, seeds 0-2, the full 300-step recipe, the 10k MNIST test set: none 1.9e-5 (weights)
  / 5.8e-5 (probabilities), weighted F1 identical; isda 3.7e-3 / 1.2e-2, F1 within 0.0004; classic 0.14 / 0.56,
  F1 within 0.003 (0.8806 / 0.8453 / 0.8898 single against 0.8793 / 0.8444 / 0.8927 batched). Random
  augmentation makes training chaotic: a rounding-size difference grows over 300 steps to the size of another
  seed's rounding, so a batched cell is a different rounding of the same cell, not an approximation of it.
- a cell's batched classifier is bit-identical whichever other cells share its batch, however many and in any
  order (CPU; checked on digits and mnist5k), so batched records are reproducible run to run and after a resume.
The tests allow 1e-4 after 40 steps and require identical predicted classes.
"""
from __future__ import annotations

import threading

import pytest
import torch

from core.data import fewshot_split, load_dataset
from core.fewshot.batched import fit_batch, run_batch
from core.fewshot.generators import Stopped
from core.fewshot.recipe import MethodRun, TrainingData, fit_classifier, predict_proba
from core.fewshot.spec import Cell, ExperimentSpec, Recipe

RECIPE = Recipe(steps=40)


@pytest.fixture(scope="module")
def digits_xy():
    data = load_dataset("digits")
    return data.x.float(), data.y


def _item(digits_xy, seed, method="none", shots=5, device="cpu"):
    x, y = digits_xy
    idx, _ = fewshot_split(y, shots, seed)
    data = TrainingData(x[idx].to(device), torch.nn.functional.one_hot(y[idx], 10).float().to(device))
    return data, MethodRun(seed, shots, method)


def _max_diff(a, b) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


# none in the quick run; classic (batch transforms) and isda (its covariance per slice), ~25-40 s each, in the heavy one
@pytest.mark.parametrize("method", ["none", pytest.param("classic", marks=pytest.mark.heavy),
                                    pytest.param("isda", marks=pytest.mark.heavy)])
def test_batched_cells_match_single_cells(digits_xy, method):
    items = [_item(digits_xy, seed, method) for seed in (0, 1, 2)]
    x_eval = digits_xy[0][:400]
    for (data, run), batched in zip(items, fit_batch(items, RECIPE)):
        single = fit_classifier(data, RECIPE, run)
        assert _max_diff(single, batched) < 1e-4
        ps, pb = predict_proba(single, x_eval), predict_proba(batched, x_eval)
        assert (ps - pb).abs().max().item() < 1e-4
        assert torch.equal(ps.argmax(1), pb.argmax(1))


def test_a_cells_batched_classifier_does_not_depend_on_its_companions(digits_xy):
    """The same cell alone, batched with one other cell or with two others (another order): bit-identical
    weights, so a resumed run that batches the remaining cells differently writes the same records."""
    items = [_item(digits_xy, seed) for seed in (0, 1, 2)]
    alone = fit_batch(items[:1], RECIPE)
    pair = fit_batch(items[:2], RECIPE)
    trio = fit_batch([items[2], items[1], items[0]], RECIPE)
    same = lambda a, b: all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))   # noqa: E731
    assert same(alone[0], pair[0]) and same(pair[0], trio[2]) and same(pair[1], trio[1])
    assert _max_diff(trio[0], trio[1]) > 1e-2                       # each slice keeps its own streams


def test_cells_of_different_shapes_are_refused_with_a_message(digits_xy):
    with pytest.raises(ValueError, match="group cells by shots"):
        fit_batch([_item(digits_xy, 0, shots=2), _item(digits_xy, 1, shots=5)], RECIPE)


def test_a_stop_during_training_returns_no_model(digits_xy):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        fit_batch([_item(digits_xy, s) for s in (0, 1)], RECIPE, stop=stop)


FAST = dict(dataset="digits", seeds=3, shots=[3], methods=["none"], recipe={"steps": 25})


def test_run_batch_records_match_run_cell_and_a_stop_keeps_the_finished_cells(tmp_path):
    from core.fewshot.cells import TIMING_KEYS, run_cell

    spec = ExperimentSpec(**FAST)
    cells = [Cell(s, 3, None, "none") for s in range(3)]
    seen = []
    records = run_batch(spec, cells, tmp_path, on_record=seen.append)
    assert seen == records and [r["batch"] for r in records] == [3, 3, 3]
    for cell, rec in zip(cells, records):
        single = run_cell(spec, cell, tmp_path)
        assert {k: single[k] for k in ("seed", "shots", "method", "n_labelled", "n_eval")} == \
               {k: rec[k] for k in ("seed", "shots", "method", "n_labelled", "n_eval")}
        assert abs(single["f1_weighted"] - rec["f1_weighted"]) < 0.02

    stop = threading.Event()
    kept = []

    def keep_then_stop(record):
        kept.append(record)
        stop.set()                                                  # asked while the batch scores its cells
    with pytest.raises(Stopped):
        run_batch(spec, cells, tmp_path, stop=stop, on_record=keep_then_stop)
    strip = lambda r: {k: v for k, v in r.items() if k not in TIMING_KEYS}   # noqa: E731
    assert [strip(r) for r in kept] == [strip(records[0])]          # the finished cell, reproducible


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batched_cells_match_single_cells_on_cuda(digits_xy):
    """On CUDA (TF32 off, so both paths compute in float32): the same agreement as on the CPU, looser."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    items = [_item(digits_xy, seed, device="cuda") for seed in (0, 1, 2)]
    x_eval = digits_xy[0][:400].cuda()
    for (data, run), batched in zip(items, fit_batch(items, RECIPE, device="cuda")):
        single = fit_classifier(data, RECIPE, run, device="cuda")
        assert (predict_proba(single, x_eval) - predict_proba(batched, x_eval)).abs().max().item() < 1e-3
