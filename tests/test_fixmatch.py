"""fixmatch: the consistency-regularisation baseline on the pool (core/augment/fixmatch.py)."""
import threading

import pytest
import torch
from torch import nn

import core.fewshot.context as context
from core.augment import AUGMENTATIONS
from core.augment.fixmatch import PseudoLabels, fixmatch, strong_view, weak_view
from core.fewshot import TIMING_KEYS, ExperimentSpec, data_mark, run_experiment

FAST = dict(dataset="digits", device="cpu", seeds=1, shots=[2], n_generated=[5], recipe={"steps": 60},
            params={"fixmatch": {"threshold": 0.15}})   # a 60-step classifier is rarely more confident


class FixedConfidence(nn.Module):
    """A stand-in classifier: row i of any input gets the probabilities probs[i] (and it records its mode)."""

    def __init__(self, probs):
        super().__init__()
        self.probs, self.modes = probs, []

    def forward(self, x):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return self.probs[: len(x)].log()


def test_pseudo_labels_only_at_or_above_the_threshold_and_the_log_holds_them():
    probs = torch.tensor([[0.96, 0.02, 0.02], [0.5, 0.3, 0.2], [0.02, 0.97, 0.01], [0.1, 0.1, 0.8],
                          [0.01, 0.04, 0.95]])
    clf = FixedConfidence(probs).train()
    log = PseudoLabels()
    pool = torch.rand(50, 1, 8, 8)
    x, y = torch.rand(4, 1, 8, 8), torch.eye(3)[[0, 1, 2, 0]]
    xs, ys = fixmatch(x, y, torch.Generator().manual_seed(0), n=5, classifier=clf, pool_x=pool, pseudo_log=log,
                      threshold=0.95)
    assert xs.shape == (5, 1, 8, 8) and ys.shape == (5, 3)
    assert ys.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]   # 0.95 itself is kept
    assert clf.modes == [(False, False)] and clf.training          # labelled in eval mode, no gradient; restored
    assert log.drawn == 5 and torch.cat(log.labels).tolist() == [0, 1, 2]
    truth = torch.zeros(50, dtype=torch.long)
    summary = log.summary(truth)
    assert summary["pseudo_label_rate"] == 0.6 and summary["pseudo_label_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="single cells"):
        fixmatch(x, y, torch.Generator(), n=5, pool_x=pool)


def test_views_draw_from_the_generator_only():
    x = torch.rand(20, 1, 8, 8)
    state = torch.get_rng_state()
    a = strong_view(x, torch.Generator().manual_seed(3))
    b = strong_view(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, strong_view(x, torch.Generator().manual_seed(4)))
    assert torch.equal(weak_view(x, torch.Generator().manual_seed(1)), weak_view(x, torch.Generator().manual_seed(1)))
    assert torch.equal(torch.get_rng_state(), state)                # the global RNG is never touched
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)


def test_registered_as_a_pool_using_online_method_that_trains_alone_when_others_are_batched(tmp_path):
    aug = AUGMENTATIONS["fixmatch"]
    assert aug.stage == "online" and aug.uses_pool and aug.defaults["threshold"] == 0.95
    assert data_mark("fixmatch") == "pool" and data_mark("classic+fixmatch") == "pool"
    from core.fewshot.methods import trains_alone
    from core.fewshot.runner import plan_cells

    assert trains_alone("fixmatch") and trains_alone("classic+fixmatch") and not trains_alone("lsi-online")
    cells = [(s, 2, 5, m) for m in ("none", "fixmatch") for s in range(3)]
    assert sorted(map(len, plan_cells(cells, 3))) == [1, 1, 1, 3]     # none's 3 seeds batched, fixmatch's alone
    spec = ExperimentSpec(**{**FAST, "seeds": 2, "recipe": {"steps": 5}}, methods=["none", "fixmatch"])
    records = run_experiment(spec, tmp_path / "batched", batch=2)     # what a CUDA run does by default
    assert {r["method"]: "batch" in r for r in records} == {"none": True, "fixmatch": False}


def _strip(records, also=()):
    return [{k: v for k, v in r.items() if k not in (*TIMING_KEYS, *also)} for r in records]


def test_never_reads_pool_labels_garbage_labels_change_only_the_reported_accuracy(tmp_path, monkeypatch):
    """The pool's labels replaced by garbage after the shots are drawn: the same record but for the pseudo-label
    accuracy (the one diagnostic that reads them)."""
    torch.set_num_threads(1)
    spec = ExperimentSpec(**FAST, methods=["fixmatch"])
    honest = run_experiment(spec, tmp_path / "honest")[0]
    init = context.CellEnv.__init__

    def garbage_pool_labels(self, *args, **kwargs):
        init(self, *args, **kwargs)                                  # shots (and their labels) drawn as usual
        y = self.train.y.clone()
        y[self.pool_idx] = (y[self.pool_idx] + 1 + torch.arange(len(self.pool_idx)) % 7) % self.n_classes
        self.train = type(self.train)(**{**vars(self.train), "y": y})
    monkeypatch.setattr(context.CellEnv, "__init__", garbage_pool_labels)
    garbled = run_experiment(spec, tmp_path / "garbled")[0]
    assert honest["pseudo_label_rate"] > 0                           # it did pseudo-label something
    assert garbled["pseudo_label_accuracy"] != honest["pseudo_label_accuracy"]
    assert _strip([garbled], ["pseudo_label_accuracy"]) == _strip([honest], ["pseudo_label_accuracy"])


def test_same_record_alone_beside_other_methods_and_beside_a_busy_thread(tmp_path):
    torch.set_num_threads(1)
    alone = run_experiment(ExperimentSpec(**FAST, methods=["fixmatch"]), tmp_path / "alone")
    beside = run_experiment(ExperimentSpec(**FAST, methods=["none", "mixup", "fixmatch", "distill"]), tmp_path / "b")
    busy = threading.Event()

    def noise():
        while not busy.is_set():
            torch.randn(64, 64) @ torch.randn(64, 64)                # global-RNG draws meanwhile
    t = threading.Thread(target=noise)
    t.start()
    try:
        threaded = run_experiment(ExperimentSpec(**FAST, methods=["fixmatch"]), tmp_path / "threaded")
    finally:
        busy.set()
        t.join()
    assert _strip(alone) == _strip([r for r in beside if r["method"] == "fixmatch"]) == _strip(threaded)
    assert alone[0]["data"] == "pool" and 0 <= alone[0]["pseudo_label_accuracy"] <= 1
