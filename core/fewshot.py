"""Few-shot experiments: spec -> cells (method x shots x seed) -> plain result records.

Protocol (issue 4): `shots` labelled examples per class drawn from the training split (seeded by the
cell's seed, identical for every method); the same classifier, initialisation and training budget
(`steps` optimiser steps) for every method; evaluation on a held-out test set (accuracy, weighted and
macro F1). Latent methods use generators trained on the unlabelled pool, cached per seed within a run.
`run_experiment` writes config.json, results.json and results.csv after each cell (atomically) and
skips cells already in results.json, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from core.augment import AUGMENTATIONS, augment, method_needs, parse_method, tta_predict
from core.data import Dataset, fewshot_split, load_dataset
from core.device import pick_device
from core.fewshot_generators import (GeneratorCache, Stopped, gc_training_set, soft_targets, train_generator,
                                     train_multi_vae)
from core.fewshot_report import METRICS, markdown_table, pivot, summarize  # noqa: F401  (re-exported)

__all__ = ["ExperimentSpec", "run_experiment", "run_cell", "load_split", "train_classifier", "summarize", "pivot",
           "markdown_table", "list_runs", "load_run", "METRICS"]
from core.isda import ClassCovariance, isda_lambda, isda_loss
from core.models.classifier import build_classifier

HELD_OUT_SEED = 12345
DEFAULT_GENERATOR = {"latent_dim": 16, "aae_latent_dim": 16, "beta": 0.5, "hidden": 256, "arch": "mlp", "steps": 2000,
                     "batch_size": 128, "lr": 1e-3, "data": "pool", "multi_steps": 150, "mix_in": 0.0,
                     "gc_threshold": 0.8}


@dataclass
class ExperimentSpec:
    dataset: str = "digits"
    test: str | None = None                 # e.g. "idx:../shared/data/mnist-test"; None: held-out split
    shots: list[int] = field(default_factory=lambda: [2, 5, 10, 20])
    methods: list[str] = field(default_factory=lambda: ["none", "classic", "mixup", "isda", "lsi", "vae-interp"])
    seeds: int = 3                          # seeds 0 .. seeds-1
    steps: int = 300                        # classifier budget: optimiser steps, same for every method
    batch_size: int = 64
    lr: float = 1e-3
    n_generated: int = 50                   # generated examples per class (latent methods)
    held_out: float = 0.25                  # test share per class when no test set is given
    classifier: dict = field(default_factory=lambda: {"width": 16, "feature_dim": 64})
    generator: dict = field(default_factory=dict)   # overrides of DEFAULT_GENERATOR
    params: dict = field(default_factory=dict)      # {augmentation name: {param: value}}
    device: str = "auto"

    def __post_init__(self):
        self.shots = [int(s) for s in self.shots]
        self.methods = list(self.methods)
        if not self.shots or min(self.shots) < 1:
            raise ValueError(f"shots must be a non-empty list of positive numbers, got {self.shots}")
        if not self.methods:
            raise ValueError("give at least one method (e.g. none)")
        for m in self.methods:
            parse_method(m)  # raises ValueError naming the unknown parts
        if self.seeds < 1 or self.steps < 1 or self.batch_size < 1 or self.n_generated < 1:
            raise ValueError("seeds, steps, batch_size and n_generated must all be >= 1")
        unknown = set(self.generator) - set(DEFAULT_GENERATOR)
        if unknown:
            raise ValueError(f"unknown generator setting(s) {sorted(unknown)}; known: {sorted(DEFAULT_GENERATOR)}")

    @property
    def gen(self) -> dict:
        return {**DEFAULT_GENERATOR, **self.generator}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def cells(self) -> list[tuple[int, int, str]]:
        """(seed, shots, method) in run order: seed-major, so each seed's generators are trained once."""
        return [(s, k, m) for s in range(self.seeds) for k in self.shots for m in self.methods]


# ---------------------------------------------------------------------------------------------- data

def load_split(spec: ExperimentSpec) -> tuple[Dataset, Dataset]:
    """(train, test): the test set given, or a held-out share of each class (fixed seed, never a shot)."""
    train = load_dataset(spec.dataset)
    if spec.test:
        test = load_dataset(spec.test, train=False)
        if test.input_shape != train.input_shape:
            raise ValueError(f"test set {spec.test} has inputs {test.input_shape}, but {spec.dataset} has "
                             f"{train.input_shape}; give a test set of the same kind")
        return train, test
    per_class = int(torch.bincount(train.y).min() * spec.held_out)
    if per_class < 1:
        raise ValueError(f"{spec.dataset} is too small for a held-out share of {spec.held_out}; give --test")
    test_idx, train_idx = fewshot_split(train.y, per_class, HELD_OUT_SEED)
    return train.subset(train_idx), train.subset(test_idx)


# ------------------------------------------------------------------------------------- classifier

def train_classifier(x, y_soft, method: str, spec: ExperimentSpec, seed: int, device,
                     stop: threading.Event | None = None):
    """Train the protocol's classifier on (x, y_soft) with the method's batch transforms / ISDA loss."""
    torch.manual_seed(seed)
    n_classes = y_soft.shape[1]
    model = build_classifier(tuple(x.shape[1:]), n_classes, **spec.classifier).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    rng = torch.Generator(device=device).manual_seed(seed)
    parts = {a.name: a for a in parse_method(method)}
    isda = parts.get("isda")
    if isda:
        p = {**isda.defaults, **spec.params.get("isda", {})}
        est = ClassCovariance(n_classes, model.feature_dim, diagonal=p["diagonal"], device=device)
    n, bs = len(x), min(spec.batch_size, len(x))
    order = torch.empty(0, dtype=torch.long, device=device)
    model.train()
    for t in range(spec.steps):
        if stop is not None and stop.is_set():
            raise Stopped()
        if len(order) < bs:
            order = torch.cat([order, torch.randperm(n, generator=rng, device=device)])
        idx, order = order[:bs], order[bs:]
        xb, yb = augment(method, x[idx], y_soft[idx], rng, stage="batch", params=spec.params)
        feats = model.features(xb)                                               # (B, D)
        if isda:
            est.update(feats, yb.argmax(1))
            lam = isda_lambda(t, spec.steps, p["lambda_0"])
            loss = isda_loss(feats, yb, model.head.weight, model.head.bias, est.cov, lam)
        else:
            loss = -(yb * F.log_softmax(model.head(feats), dim=1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict_proba(model, x, tta: bool = False, n_views: int = 5, batch_size: int = 1000):
    out = []
    for xb in x.split(batch_size):
        out.append(tta_predict(model, xb, n_views) if tta else torch.softmax(model(xb), 1))
    return torch.cat(out)


def scores(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    t, p = y_true.cpu().numpy(), y_pred.cpu().numpy()
    return {"accuracy": float(accuracy_score(t, p)), "f1_weighted": float(f1_score(t, p, average="weighted")),
            "f1_macro": float(f1_score(t, p, average="macro"))}


# -------------------------------------------------------------------------------------------- cells

def _generators(method, spec, train, x_lab, y_lab, seed, device, cache, stop) -> dict:
    """The generator objects a method needs (trained on first use, then cached for the run)."""
    gen, ctx = spec.gen, {}
    needs = method_needs(method)
    pool = train if gen["data"] == "pool" else Dataset(train.id, x_lab.cpu(), y_lab.cpu(), train.class_names)
    data_key = "pool" if gen["data"] == "pool" else f"labelled-{len(x_lab)}"
    settings = tuple(sorted(gen.items()))
    for kind in ("vae", "aae-uniform"):
        if kind in needs or (kind == "vae" and "vae+gc" in needs):
            want_early = kind == "vae" and "vae+gc" in needs
            key = (spec.dataset, data_key, settings, seed, kind)
            pair = cache.get(key, lambda: train_generator(kind, pool, gen, seed, str(device), stop, early=True)
                             if kind == "vae" else (train_generator(kind, pool, gen, seed, str(device), stop), None))
            ctx[kind] = pair[0]
            if want_early:
                ctx["vae-early"] = pair[1]
            for m in [ctx[kind]] + ([pair[1]] if pair[1] is not None else []):
                m.to(device)
    if "multi-vae" in needs:
        key = (spec.dataset, f"multi-{len(x_lab)}", settings, seed, "multi-vae")
        ctx["multi-vae"] = cache.get(key, lambda: train_multi_vae(x_lab.cpu(), y_lab.cpu(), train.n_classes, gen,
                                                                  seed, str(device), stop))
    if "vae+gc" in needs:
        key = (spec.dataset, f"gc-{len(x_lab)}", settings, seed, "gc")

        def build_gc():
            rng = torch.Generator(device=device).manual_seed(seed + 7)
            xg, yg = gc_training_set(x_lab, y_lab, ctx["vae-early"], ctx["vae"], gen, rng)
            clf = train_classifier(xg, soft_targets(yg, train.n_classes), "none", spec, seed, device, stop)
            return lambda xb: torch.softmax(clf(xb), 1)
        ctx["gc"] = cache.get(key, build_gc)
    return ctx


def run_cell(spec: ExperimentSpec, train: Dataset, test: Dataset, seed: int, shots: int, method: str,
             cache: GeneratorCache, device, stop: threading.Event | None = None) -> dict:
    t0 = time.perf_counter()
    lab_idx, _ = fewshot_split(train.y, shots, seed)
    x_lab, y_lab = train.x[lab_idx].to(device), train.y[lab_idx].to(device)
    y_soft = soft_targets(y_lab, train.n_classes)
    before = dict(cache.seconds)
    ctx = _generators(method, spec, train, x_lab, y_lab, seed, device, cache, stop)
    gen_seconds = sum(v for k, v in cache.seconds.items() if k not in before)
    rng = torch.Generator(device=device).manual_seed(seed * 7919 + shots)
    params = {name: dict(p) for name, p in spec.params.items()}
    for a in parse_method(method):
        if a.stage == "expand":
            params.setdefault(a.name, {}).setdefault("n_per", spec.n_generated)
            if a.name == "vae-prior-gc":
                params[a.name].setdefault("threshold", spec.gen["gc_threshold"])
    x_aug, y_aug = augment(method, x_lab, y_soft, rng, stage="expand", params=params, context=ctx)
    model = train_classifier(x_aug, y_aug, method, spec, seed, device, stop)
    parts = {a.name: a for a in parse_method(method)}
    n_views = {**AUGMENTATIONS["tta"].defaults, **spec.params.get("tta", {})}["n_views"]
    proba = predict_proba(model, test.x.to(device), tta="tta" in parts, n_views=n_views)
    record = {"dataset": spec.dataset, "test": spec.test or f"held-out {spec.held_out}", "method": method,
              "shots": shots, "seed": seed, "n_labelled": len(x_lab), "n_train": len(x_aug),
              "n_test": len(test), **scores(test.y, proba.argmax(1).cpu()),
              "seconds": time.perf_counter() - t0, "generator_seconds": gen_seconds, "device": str(device)}
    for kind in ("vae", "aae-uniform"):
        health = getattr(ctx.get(kind), "fewshot_health", None)
        if health:
            record.update({f"{kind}_{k}": v for k, v in health.items()})
    return record


# ------------------------------------------------------------------------------------------- runner

def _atomic_write(path: Path, text: str):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _records_csv(records: list[dict]) -> str:
    if not records:
        return ""
    keys = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def _comparable(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("shots", "methods", "seeds", "device")}


def run_experiment(spec: ExperimentSpec, out_dir, on_progress: Callable[[dict], None] | None = None,
                   stop: threading.Event | None = None) -> list[dict]:
    """Run every cell not yet in out_dir/results.json; returns all records (old and new).

    on_progress gets {"done", "total", "skipped", "cell": (seed, shots, method), "record" | None}.
    Setting `stop` ends the run before the next cell (a cell in progress is discarded)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, res_path = out / "config.json", out / "results.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if _comparable(old.get("spec", {})) != _comparable(spec.to_dict()):
            raise ValueError(f"{out} holds a run with different settings; resume it with the same settings "
                             f"(only shots, methods, seeds and device may change) or choose a new output folder")
    records = json.loads(res_path.read_text()) if res_path.exists() else []
    done = {(r["seed"], r["shots"], r["method"]) for r in records}
    _atomic_write(cfg_path, json.dumps({"spec": spec.to_dict(), "generator": spec.gen,
                                        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                        "torch": torch.__version__}, indent=2))
    cells = spec.cells()
    todo = [c for c in cells if c not in done]
    device = pick_device(spec.device)
    if todo:
        train, test = load_split(spec)
    cache = GeneratorCache()
    skipped = len(cells) - len(todo)
    for i, (seed, shots, method) in enumerate(todo):
        if stop is not None and stop.is_set():
            break
        cache.drop(keep=lambda key: key[3] == seed)   # generators of finished seeds are not needed again
        try:
            record = run_cell(spec, train, test, seed, shots, method, cache, device, stop)
        except Stopped:
            break
        records.append(record)
        _atomic_write(res_path, json.dumps(records, indent=1))
        _atomic_write(out / "results.csv", _records_csv(records))
        if on_progress:
            on_progress({"done": skipped + i + 1, "total": len(cells), "skipped": skipped,
                         "cell": (seed, shots, method), "record": record})
    if records:
        _atomic_write(out / "summary.csv", _records_csv(summarize(records)))
    return records


# ------------------------------------------------------------------------------------------- run folders

def list_runs(runs_dir) -> list[dict]:
    """Few-shot runs under runs_dir (folders holding config.json + results.json), newest first."""
    root = Path(runs_dir)
    runs = []
    for cfg in sorted(root.glob("*/config.json")) if root.is_dir() else []:
        try:
            meta = json.loads(cfg.read_text())
            spec = meta["spec"]
        except (OSError, ValueError, KeyError):
            continue
        res = cfg.parent / "results.json"
        n = len(json.loads(res.read_text())) if res.exists() else 0
        total = len(spec["shots"]) * len(spec["methods"]) * spec["seeds"]
        runs.append({"path": str(cfg.parent), "name": cfg.parent.name, "created": meta.get("created", ""),
                     "dataset": spec["dataset"], "methods": spec["methods"], "shots": spec["shots"],
                     "seeds": spec["seeds"], "n_records": n, "complete": n >= total})
    return sorted(runs, key=lambda r: r["created"], reverse=True)


def load_run(path) -> dict:
    """{"spec": ExperimentSpec, "config": dict, "records": [...], "summary": summarize(records)}."""
    path = Path(path)
    cfg = path / "config.json"
    if not cfg.exists():
        raise ValueError(f"{path} is not a few-shot run folder (no config.json)")
    meta = json.loads(cfg.read_text())
    res = path / "results.json"
    records = json.loads(res.read_text()) if res.exists() else []
    return {"spec": ExperimentSpec.from_dict(meta["spec"]), "config": meta, "records": records,
            "summary": summarize(records) if records else []}
