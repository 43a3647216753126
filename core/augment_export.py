"""Take augmented data away: an .npz with images, labels and where every row came from.

The file (all arrays loadable with ``np.load(..., allow_pickle=False)``; it loads again as a dataset
with ``core.data.load_dataset("npz:PATH")``, which reads X, y and class_names and ignores the rest):

  X             (N, H, W) one-channel or (N, C, H, W) images in [0, 1], float32; or (N, F) vectors
  y             (N,) int64 hard labels: argmax of y_soft (ties: the lower class id)
  y_soft        (N, K) float32 soft labels, rows sum to 1
  source_index  (N, 2) int64 rows of the original data set (load_dataset(dataset), whole) that the row
                was made from; column 1 is the second source of a pair method; -1 where not applicable
  lam           (N,) float32 weight of source_index[:, 0] in a two-source mix (the second gets 1 - lam);
                NaN where there is no second source
  alpha         (N,) float32 step / scale of a latent sampler (kNN step, noise sigma); NaN elsewhere
  generated     (N,) bool: False for the real labelled shots, True for augmented rows
  class_names   (K,) str
  meta          () str: JSON with method, parameters, dataset, shots, seed, generator checkpoint and its
                sha256, library versions, and a line per array saying what it means

Batch methods (mixup, cutmix, saliencymix, classic, ...) are traced without knowing their insides: the
method runs twice from the same generator state, once on the real soft labels and once on one-hot row
tags (plus an all-zero column that measures any uniform floor such as label smoothing's). Every
augmentation mixes labels exactly as it mixes inputs (the registry's contract), so the tags come back as
the weights of the source rows. Generating methods are not rebuilt here: the file holds the rows that
core.fewshot.cells.generate_rows makes for the few-shot cell (seed, shots, n, method) — the same function, the
same shots, the same named random stream — with the provenance the method itself returns (a Generated). They
need the generator: a checkpoint standing in for a method's one generator (``checkpoint=``), or a few-shot run
folder (``run=``) with all of them; this module never trains one.
"""
from __future__ import annotations

import inspect
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.augment.generated import Generated

ARRAY_NOTES = {
    "X": "inputs; images in [0, 1] ((N, H, W) one channel, else (N, C, H, W)), or (N, F) vectors",
    "y": "hard labels, argmax of y_soft (ties: the lower class id)",
    "y_soft": "soft labels (N, K), rows sum to 1",
    "source_index": "rows of the original data set each row was made from (N, 2); -1 = not applicable",
    "lam": "weight of source_index[:, 0] in a two-source mix, the second gets 1 - lam; NaN = no second source",
    "alpha": "step or scale of a latent sampler (kNN step, noise sigma); NaN = not applicable",
    "generated": "False for the real labelled shots, True for augmented rows",
}
# The pages' samplers (their downloads carry the same provenance as the CLI's files).
SAMPLER_FORMULAS = {
    "noise": "z = z(src0) + eps, eps ~ N(0, alpha^2 I); label of src0",
    "knn-interpolate": "z = z(src0) + alpha (z(src1) - z(src0)), src1 a same-class kNN; label of src0",
    "knn-extrapolate": "z = z(src0) - alpha (z(src1) - z(src0)), src1 a same-class kNN; label of src0",
    "prior": "z ~ the prior scaled by alpha (unlabelled)",
    "isda-gaussian": "z = z(src0) + delta, delta ~ N(0, lambda Sigma_y) with Sigma_y the class covariance of the "
                     "latents; label of src0",
}


@dataclass
class AugmentedSet:
    x: np.ndarray                      # (N, *shape) float32
    y_soft: np.ndarray                 # (N, K) float32
    source_index: np.ndarray           # (N, 2) int64
    lam: np.ndarray                    # (N,) float32
    alpha: np.ndarray                  # (N,) float32
    generated: np.ndarray              # (N,) bool
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def arrays(self) -> dict[str, np.ndarray]:
        x = self.x[:, 0] if self.x.ndim == 4 and self.x.shape[1] == 1 else self.x
        meta = {**self.meta, "n_rows": len(self), "n_generated": int(self.generated.sum()), "arrays": ARRAY_NOTES}
        return {"X": x, "y": self.y_soft.argmax(1).astype(np.int64), "y_soft": self.y_soft,
                "source_index": self.source_index, "lam": self.lam, "alpha": self.alpha,
                "generated": self.generated, "class_names": np.array(self.class_names, dtype=str),
                "meta": np.array(json.dumps(meta, default=str))}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays())
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the .npz through a unique temporary file renamed into place (a failed write leaves no half file,
        and an existing file is replaced only whole; refusing one is the caller's choice, see commands/augment)."""
        import os
        import tempfile

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.to_bytes())
            from core.fewshot.runfiles import readable_by_group

            readable_by_group(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def make_set(x, y_soft, class_names, *, source_index=None, lam=None, alpha=None, generated=None,
             meta: dict | None = None) -> AugmentedSet:
    """Check and pack samples + provenance (arrays or tensors). Missing provenance becomes -1 / NaN;
    a 1-D source_index is the single source of each row. Images are clipped to [0, 1]."""
    as_np = lambda a: a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)  # noqa: E731
    x = as_np(x).astype(np.float32)
    y_soft = as_np(y_soft).astype(np.float32)
    n, k = len(x), len(class_names)
    if y_soft.shape != (n, k):
        raise ValueError(f"y_soft must be (N, K) = ({n}, {k}), one row per sample and a column per class name; "
                         f"got {y_soft.shape}")
    if n and ((y_soft < -1e-6).any() or not np.allclose(y_soft.sum(1), 1, atol=1e-4)):
        raise ValueError("soft labels must be non-negative and sum to 1 per row; unlabelled samples cannot be "
                         "exported as a labelled data set")
    if x.ndim in (3, 4):
        x = np.clip(x, 0, 1)
    src = np.full((n, 2), -1, np.int64)
    if source_index is not None:
        s = as_np(source_index).astype(np.int64)
        s = s[:, None] if s.ndim == 1 else s
        if len(s) != n or s.shape[1] > 2:
            raise ValueError(f"source_index must be (N,) or (N, 2) with N = {n}, got {s.shape}")
        src[:, : s.shape[1]] = s
    col = lambda a: np.full(n, np.nan, np.float32) if a is None else np.broadcast_to(  # noqa: E731
        as_np(a).astype(np.float32), (n,)).copy()
    gen = np.ones(n, bool) if generated is None else np.broadcast_to(as_np(generated).astype(bool), (n,)).copy()
    return AugmentedSet(x, y_soft, src, col(lam), col(alpha), gen, [str(c) for c in class_names], dict(meta or {}))


def read_export(path: str | Path) -> dict:
    """The arrays of an exported file (meta parsed from JSON), loaded without pickle."""
    with np.load(Path(path), allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def provenance_meta(method: str, params: dict, dataset: str, *, shots: int | None = None, seed: int | None = None,
                    checkpoint=None, **extra) -> dict:
    """The metadata every export carries (a page's download uses it too). checkpoint: a core.checkpoints
    Checkpoint (its name, weights sha256 and training data set are recorded) or None."""
    from core.checkpoints import library_versions

    gen = None
    if checkpoint is not None:
        gen = {"name": checkpoint.name, "path": str(checkpoint.path) if checkpoint.path else None,
               "sha256": checkpoint.sha256, "model": checkpoint.meta.get("model"),
               "dataset": checkpoint.meta.get("dataset")}
    return {"method": method, "params": params, "dataset": dataset, "shots": shots, "seed": seed,
            "generator_checkpoint": gen, "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


# ------------------------------------------------------------------------------------------- build

def build_augmented(dataset: str, shots: int, method: str, n_per: int, seed: int = 0, checkpoint=None,
                    params: dict | None = None, include_shots: bool = True, test: str | None = None,
                    run=None) -> AugmentedSet:
    """`shots` labelled examples per class and n_per augmented rows per class made by `method` (one registered
    augmentation), chosen exactly as the few-shot cell (seed, shots, n_per, method) chooses them: its shots
    (core.fewshot's training split of `dataset`: validation share and, without `test`, held-out share set
    aside) and, for a generating method, the rows core.fewshot.cells.generate_rows makes from the cell's own
    named stream — so the file holds what that cell trains on. The generator comes from `checkpoint` (a folder
    or a loaded core.checkpoints.Checkpoint standing in for the method's one generator) or from `run` (a few-shot
    run folder: its settings and its trained generators; every generating method can be exported from a run).
    Batch methods (mixup, ...) are traced: the shots passed through the method in rounds (see _batch_rows)."""
    from core.augment import AUGMENTATIONS, parse_method
    from core.augment.params import check_method_params
    from core.fewshot.cells import Cell, load_splits
    from core.data import fewshot_split

    parts = parse_method(method)                                                # ValueError for unknown names
    if len(parts) > 1:
        raise ValueError(f"export one method at a time, got {method!r}; export each part, or train with the "
                         f"combination in the few-shot lab")
    if n_per < 1:
        raise ValueError(f"n (augmented rows per class) must be >= 1, got {n_per}")
    aug = parts[0] if parts else AUGMENTATIONS["none"]
    check_method_params(aug.name, params or {})                                # SettingError: one line, before work
    spec = _export_spec(dataset, aug, shots, seed, n_per, test, run)
    own = {**spec.params.get(aug.name, {}), **(params or {})}
    used = {**_signature_defaults(aug.fn), **aug.defaults, **own}                # every value used, for the record
    if "n_per" in used:
        used["n_per"] = n_per
    splits = load_splits(spec)
    data, rows = splits.train, splits.train_rows
    cell = Cell(seed, shots, n_per if aug.stage == "expand" else None, aug.name)
    lab_idx, pool_idx = fewshot_split(data.y, shots, seed)
    x, labels = data.x[lab_idx], data.y[lab_idx]
    y_soft = F.one_hot(labels, data.n_classes).float()
    ckpt = None
    if aug.stage == "batch":
        rng = torch.Generator().manual_seed(int(seed))
        x_new, y_new, src, lam, step = _batch_rows(aug, x, y_soft, labels, n_per, rng, used)
        new = Generated.of(x_new, y_new, src[:, 0], src[:, 1], lam, step)
    elif aug.stage == "expand":
        context, ckpt = _generator_context(aug, spec, cell, checkpoint, run, data)
        new = _generated(spec, cell, x, y_soft, context, own)
    else:                                                                       # none / loss / eval: inputs unchanged
        _refuse_unexportable(aug)
        new = None
    meta = provenance_meta(aug.name, used, data.id, shots=shots, seed=seed, checkpoint=ckpt, n_per_class=n_per,
                           formula=aug.formula or None, protocol=_protocol(spec), run=str(run) if run else None,
                           note=None if new is not None else f"{aug.name} changes no inputs (stage {aug.stage}); "
                                                             f"the file holds the shots only")
    real = make_set(x, y_soft, data.class_names, source_index=rows[lab_idx], generated=False)
    if new is None:
        real.meta = meta
        return real
    origin_rows = rows[pool_idx] if new.origin == "pool" else rows[lab_idx]     # provenance -> data set rows
    src = torch.stack([_to_rows(new.source, origin_rows), _to_rows(new.partner, origin_rows)], 1)
    gen = make_set(new.x, new.y_soft, data.class_names, source_index=src, lam=new.lam, alpha=new.step,
                   generated=True)
    sets = [real, gen] if include_shots else [gen]
    return AugmentedSet(np.concatenate([p.x for p in sets]), np.concatenate([p.y_soft for p in sets]),
                        np.concatenate([p.source_index for p in sets]), np.concatenate([p.lam for p in sets]),
                        np.concatenate([p.alpha for p in sets]), np.concatenate([p.generated for p in sets]),
                        list(data.class_names), meta)


def _generated(spec, cell, x: Tensor, y_soft: Tensor, context: dict, own: dict):
    from core.fewshot.cells import cell_params, generate_rows

    params = cell_params(spec, cell)
    params[cell.method] = {**own, "n_per": cell.n_generated}
    new = generate_rows(cell, x, y_soft, params, context)
    if new is None:
        raise ValueError(f"{cell.method} generated no rows for these shots (e.g. nothing above its confidence "
                         f"threshold); try more shots or a lower threshold")
    if new.origin == "mixed":
        raise ValueError(f"{cell.method}'s rows come from both the shots and the pool; export one method at a time")
    return new


def _to_rows(index: Tensor, rows: Tensor) -> Tensor:
    return torch.where(index >= 0, rows[index.clamp_min(0)], index)


def _protocol(spec) -> dict:
    return {"validation": spec.validation, "held_out": None if spec.test else spec.held_out, "test": spec.test,
            "gen_data": spec.gen_data}


def _export_spec(dataset, aug, shots, seed, n_per, test, run):
    """The few-shot settings the export reproduces a cell of: a run's own, or the defaults for `dataset`."""
    from core.fewshot.spec import ExperimentSpec

    if run is not None:
        from core.fewshot.runner import load_run

        saved = load_run(run)["spec"].to_dict()
        spec = ExperimentSpec.from_dict({**saved, "methods": [aug.name], "shots": [shots], "seeds": seed + 1,
                                         "n_generated": [n_per]})
        if spec.dataset != dataset:
            raise ValueError(f"the run {run} is on {spec.dataset}, not {dataset}; give --dataset {spec.dataset}")
        return spec
    return ExperimentSpec(dataset=dataset, test=test, methods=[aug.name], shots=[shots], seeds=seed + 1,
                          n_generated=[n_per])


def _signature_defaults(fn) -> dict:
    skip = {"x", "y", "rng", "model", "models", "gc", "teacher", "pool_x"}
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if k not in skip and p.default is not inspect.Parameter.empty}


def _refuse_unexportable(aug) -> None:
    if aug.stage in ("online", "represent"):
        raise ValueError(f"{aug.name} makes no data set to keep (stage {aug.stage}); export "
                         "a batch or an expand-stage method (its rows are what a cell trains on) instead")


def _generator_context(aug, spec, cell, checkpoint, run, data):
    """{augmentation: {keyword: value}} for an expander, from a run folder (every hook, as in the cell) or
    from one checkpoint standing in for the method's single generator. -> (context, checkpoint or None)."""
    from core.fewshot.generators import GENERATORS

    if run is not None:
        from core.fewshot.context import CellEnv

        env = CellEnv(spec, cell, data, run, device="cpu")
        return env.method_context(aug.name), None
    gens = [g for g in aug.inputs.values() if g in GENERATORS]
    if aug.prepare is not None or len(gens) != 1 or GENERATORS[gens[0]].checkpoint_kind is None:
        wants = ", ".join(aug.needs) or "the unlabelled pool and a teacher"
        raise ValueError(f"{aug.name} needs more than a single generator checkpoint ({wants}); export it from a "
                         f"few-shot run folder instead (--run DIR), where its generators are")
    gen = GENERATORS[gens[0]]
    if checkpoint is None:
        raise ValueError(f"{aug.name} decodes latent codes and needs a generator checkpoint ({gen.name}: "
                         f"{gen.description}): pass --checkpoint DIR (e.g. a checkpoint whose config has "
                         f"{gen.checkpoint_kind}) or --run DIR (a few-shot run folder)")
    from core.checkpoints import Checkpoint, load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device="cpu")
    cfg = ckpt.model.config.to_dict()
    wrong = {k: cfg.get(k) for k, v in gen.checkpoint_kind.items() if cfg.get(k) != v}
    if wrong:
        raise ValueError(f"{aug.name} needs a checkpoint with {gen.checkpoint_kind} ({gen.description}); "
                         f"{ckpt.name} has {wrong}")
    if tuple(ckpt.model.config.input_shape) != tuple(data.input_shape):
        raise ValueError(f"{ckpt.name} expects inputs {tuple(ckpt.model.config.input_shape)} but {data.id} has "
                         f"{data.input_shape}; pass a checkpoint trained on data of this shape")
    return {aug.name: {kw: ckpt.model for kw, g in aug.inputs.items() if g == gen.name}}, ckpt


def _batch_rows(aug, x: Tensor, y_soft: Tensor, labels: Tensor, n_per: int, rng: torch.Generator, params: dict):
    """Pass the shots through a batch method in rounds until every class has n_per rows; trace sources."""
    b = len(x)
    tags = torch.cat([torch.eye(b), torch.zeros(b, 1)], 1)                      # (B, B + 1)
    rounds = -(-n_per // int(torch.bincount(labels).min()))
    xs, ys, ws = [], [], []
    for _ in range(rounds):
        state = rng.get_state()
        xa, ya = aug(x, y_soft, rng, **params)
        twin = torch.Generator().set_state(state)
        xt, wt = aug(x, tags, twin, **params)
        if not torch.equal(xa, xt):
            raise RuntimeError(f"{aug.name}'s random draws depend on the labels; its sources cannot be traced")
        xs.append(xa), ys.append(ya), ws.append(wt[:, :b] - wt[:, b:])           # remove a uniform floor
    x_all, y_all, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)               # row r comes from shot r % B
    w = w / w.sum(1, keepdim=True)
    own = torch.arange(len(w)) % b
    lam = w[torch.arange(len(w)), own]
    other = w.clone()
    other[torch.arange(len(w)), own] = 0
    weight, partner = other.max(1)
    mixed = weight > 1e-6
    partner = torch.where(mixed, partner, -1)
    lam = torch.where(mixed, lam, float("nan"))
    order = torch.argsort(labels[own], stable=True)                              # by class, round by round
    cls = labels[own][order]
    rank = torch.arange(len(order)) - torch.searchsorted(cls, cls)
    keep = order[rank < n_per]
    return x_all[keep], y_all[keep], torch.stack([own, partner], 1)[keep], lam[keep], None
