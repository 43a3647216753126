"""A cell's environment: what its methods may draw on, built lazily from hooks, never by method name.

`CellEnv` holds the cell's labelled shots and the unlabelled pool, loads the generators it needs from the run
folder (each generator's `context` hook turns its trained parts into what a method receives), and offers what a
method's `prepare` hook may ask for (the pool's inputs, a classifier trained on the shots). `method_context`
gives every part of a method its keyword arguments: {augmentation name: {keyword: value}}.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from core.augment import parse_method
from core.data import fewshot_split
from core.fewshot.generators import GENERATORS, MANIFEST, load_generator, soft_targets
from core.fewshot.spec import Cell, ExperimentSpec

_LOCK = threading.Lock()
_ON_DEVICE: dict = {}                     # (id(x), device) -> (x, its copy): one evaluation set per device


def generator_key(name: str, seed: int, shots: int, gen_data: str) -> str:
    """Folder name of a trained generator under <run>/generators/: pool generators once per seed, generators
    trained on labelled shots once per (seed, shots)."""
    on_pool = GENERATORS[name].scope == "pool" and gen_data == "pool"
    return f"{name}-{'pool' if on_pool else f'k{shots}'}-s{seed}"


def loaded_generator(folder: Path, device) -> dict:
    """load_generator, kept for the next cells of this process (a saved generator never changes: its folder is
    written once, atomically, before any cell that needs it starts). Keyed by its manifest's identity too, so a
    folder saved again (a half-saved one retrained, a run folder deleted and run anew) is read again."""
    folder = Path(folder).resolve()
    try:
        st = (folder / MANIFEST).stat()
        stamp = (st.st_ino, st.st_mtime_ns)
    except OSError:
        stamp = None
    return _load(str(folder), str(device), stamp)


@lru_cache(maxsize=6)                     # cells of a seed share its generators
def _load(folder: str, device: str, stamp) -> dict:
    return load_generator(Path(folder), device)


class CellEnv:
    def __init__(self, spec: ExperimentSpec, cell: Cell, train, run_dir, device="cpu",
                 stop: threading.Event | None = None):
        self.spec, self.cell, self.train = spec, Cell(*cell), train
        self.run_dir, self.device, self.stop = Path(run_dir), device, stop
        self.n_classes = train.n_classes
        self.lab_idx, self.pool_idx = fewshot_split(train.y, self.cell.shots, self.cell.seed)
        self.x_lab = train.x[self.lab_idx].to(device)                          # (N, *shape)
        self.y_lab = train.y[self.lab_idx].to(device)                          # (N,)
        self._values: dict = {}
        self._parts: dict = {}

    # --- generators
    def generator_parts(self, name: str) -> dict:
        """The trained parts of generator `name` for this cell, {part: model} (loaded once)."""
        if name not in self._parts:
            key = generator_key(name, self.cell.seed, self.cell.shots, self.spec.gen_data)
            self._parts[name] = loaded_generator(self.run_dir / "generators" / key, self.device)
        return self._parts[name]

    def generator(self, name: str):
        """What a method receives for generator `name`: its context hook's value (built once per cell)."""
        if name not in self._values:
            self._values[name] = GENERATORS[name].context(self, name)
        return self._values[name]

    # --- what prepare hooks may ask for
    def pool_x(self) -> Tensor:
        """The unlabelled pool's inputs (its labels are never given to a method)."""
        if "pool" not in self._values:
            self._values["pool"] = self.train.x[self.pool_idx].to(self.device)
        return self._values["pool"]

    def train_on(self, x: Tensor, y_soft: Tensor):
        """The recipe's classifier (method none, this cell's streams) trained on (x, y_soft)."""
        from core.fewshot.recipe import train_classifier

        return train_classifier(x, y_soft, self.spec.classifier_recipe, seed=self.cell.seed, shots=self.cell.shots,
                                method="none", device=self.device, stop=self.stop)

    def shot_teacher(self):
        """x -> class probabilities of a classifier trained on the shots, averaged over the TTA views (seed 003's
        teacher for data distillation)."""
        if "teacher" not in self._values:
            from core.augment import tta_predict
            from core.fewshot.recipe import tta_views_default

            teacher = self.train_on(self.x_lab, soft_targets(self.y_lab, self.n_classes))
            self._values["teacher"] = lambda xb: tta_predict(teacher, xb, tta_views_default())
        return self._values["teacher"]

    # --- per method
    def method_context(self, method: str) -> dict:
        """{augmentation name: {keyword: value}} for every part of `method` that takes something from the cell."""
        out = {}
        for aug in parse_method(method):
            own = {kw: self.generator(gen) for kw, gen in aug.inputs.items() if gen in GENERATORS}
            if aug.prepare is not None:
                own.update(aug.prepare(self))
            if own:
                out[aug.name] = own
        return out

    def generator_health(self) -> dict:
        """{"<generator>_recon_mse": ..., "<generator>_z_std": ...} of every single-model generator this cell
        loaded (measured when it was saved): a collapsed generator shows in the record."""
        out = {}
        for name, parts in self._parts.items():
            health = getattr(parts.get("model"), "fewshot_health", None)
            if health:
                out.update({f"{name}_{k}": v for k, v in health.items() if k in ("recon_mse", "z_std")})
        return out


def eval_inputs(x: Tensor, device) -> Tensor:
    """The evaluation set on `device`, copied once per process and device (every cell of a run evaluates on
    the same tensor)."""
    if torch.device(device).type == "cpu":
        return x.to(device)
    key = (id(x), str(device))
    with _LOCK:
        hit = _ON_DEVICE.get(key)
        if hit is not None and hit[0] is x:
            return hit[1]
        _ON_DEVICE.clear()                      # one evaluation set per device at a time
        _ON_DEVICE[key] = (x, x.to(device))
        return _ON_DEVICE[key][1]
