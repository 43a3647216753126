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
the weights of the source rows. Latent methods are rebuilt here from core.latent's samplers, which keep
their sources; they need a generator checkpoint (``checkpoint=``), which this module never trains.
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

ARRAY_NOTES = {
    "X": "inputs; images in [0, 1] ((N, H, W) one channel, else (N, C, H, W)), or (N, F) vectors",
    "y": "hard labels, argmax of y_soft (ties: the lower class id)",
    "y_soft": "soft labels (N, K), rows sum to 1",
    "source_index": "rows of the original data set each row was made from (N, 2); -1 = not applicable",
    "lam": "weight of source_index[:, 0] in a two-source mix, the second gets 1 - lam; NaN = no second source",
    "alpha": "step or scale of a latent sampler (kNN step, noise sigma); NaN = not applicable",
    "generated": "False for the real labelled shots, True for augmented rows",
}
# Latent methods whose provenance is rebuilt here, and the formula written into the metadata.
LATENT_FORMULAS = {
    "lsi": "z = (1 - t) z(src0) + t z(src1), src1 of another class, t = params.lam (or t ~ Beta(alpha, alpha)); "
           "y_soft = (1 - t) e(y0) + t e(y1); the lam column holds 1 - t, the weight of src0",
    "vae-noise": "z = mu(src0) + eps, eps ~ N(0, alpha^2 I); label of src0",
    "vae-interp": "z = mu(src0) + alpha (mu(src1) - mu(src0)), src1 a same-class kNN; lam = 1 - alpha",
    "vae-extrap": "z = mu(src0) - alpha (mu(src1) - mu(src0)), src1 a same-class kNN; lam = 1 + alpha",
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
GENERATOR_KINDS = {"vae": ("vae", None), "aae-uniform": ("aae", "uniform")}


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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
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
                    params: dict | None = None, include_shots: bool = True) -> AugmentedSet:
    """`shots` labelled examples per class of `dataset` (core.data.fewshot_split with `seed`) and n_per
    augmented rows per class made by `method` (one registered augmentation; latent ones need `checkpoint`,
    a checkpoint folder or a loaded core.checkpoints.Checkpoint). params: the method's parameters."""
    from core.augment import AUGMENTATIONS, parse_method
    from core.data import fewshot_split, load_dataset

    parts = parse_method(method)                                                # ValueError for unknown names
    if len(parts) > 1:
        raise ValueError(f"export one method at a time, got {method!r}; export each part, or train with the "
                         f"combination in the few-shot lab")
    if n_per < 1:
        raise ValueError(f"n (augmented rows per class) must be >= 1, got {n_per}")
    aug = parts[0] if parts else AUGMENTATIONS["none"]
    params = {**_signature_defaults(aug.fn), **aug.defaults, **(params or {})}   # every value used, for the record
    if "n_per" in params:
        params["n_per"] = n_per
    ckpt = _generator_checkpoint(aug, checkpoint)
    data = load_dataset(dataset)
    if ckpt is not None and tuple(ckpt.model.config.input_shape) != tuple(data.input_shape):
        raise ValueError(f"{ckpt.name} expects inputs {tuple(ckpt.model.config.input_shape)} but {data.id} has "
                         f"{data.input_shape}; pass a checkpoint trained on data of this shape")
    lab_idx, _ = fewshot_split(data.y, shots, seed)
    x, labels = data.x[lab_idx], data.y[lab_idx]
    y_soft = F.one_hot(labels, data.n_classes).float()
    rng = torch.Generator().manual_seed(int(seed))
    if aug.stage == "batch":
        rows = _batch_rows(aug, x, y_soft, labels, n_per, rng, params)
    elif aug.stage == "expand":
        rows = _latent_rows(aug.name, ckpt.model, x, labels, data.n_classes, n_per, rng, params)
    else:                                                                       # none / loss / eval: inputs unchanged
        rows = None
    meta = provenance_meta(aug.name, params, data.id, shots=shots, seed=seed, checkpoint=ckpt, n_per_class=n_per,
                           formula=LATENT_FORMULAS.get(_family(aug.name)),
                           note=None if rows is not None else f"{aug.name} changes no inputs (stage {aug.stage}); "
                                                              f"the file holds the shots only")
    real = make_set(x, y_soft, data.class_names, source_index=lab_idx, generated=False)
    if rows is None:
        real.meta = meta
        return real
    x_new, y_new, src, lam, alpha = rows
    src = torch.where(src >= 0, lab_idx[src.clamp_min(0)], src)                 # shot rows -> data set rows
    new = make_set(x_new, y_new, data.class_names, source_index=src, lam=lam, alpha=alpha, generated=True)
    parts = [real, new] if include_shots else [new]
    return AugmentedSet(np.concatenate([p.x for p in parts]), np.concatenate([p.y_soft for p in parts]),
                        np.concatenate([p.source_index for p in parts]), np.concatenate([p.lam for p in parts]),
                        np.concatenate([p.alpha for p in parts]), np.concatenate([p.generated for p in parts]),
                        list(data.class_names), meta)


def _signature_defaults(fn) -> dict:
    skip = {"x", "y", "rng", "model", "models", "gc"}
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if k not in skip and p.default is not inspect.Parameter.empty}


def _family(name: str) -> str:
    return name.replace("-noise", "") if name.startswith("vae-") else name


def _generator_checkpoint(aug, checkpoint):
    if aug.stage in ("online", "represent"):
        raise ValueError(f"{aug.name} makes no data set to keep (stage {aug.stage}); export "
                         f"{'lsi' if aug.name == 'lsi-online' else 'a batch or latent method'} instead")
    if aug.stage != "expand":
        return None
    if _family(aug.name) not in LATENT_FORMULAS or len(aug.needs) != 1 or aug.needs[0] not in GENERATOR_KINDS:
        wants = ", ".join(aug.needs) or "the unlabelled pool and a teacher"
        raise ValueError(f"{aug.name} needs more than a single generator checkpoint ({wants}); exportable latent "
                         f"methods: {sorted(LATENT_FORMULAS)} and their -noise variants")
    kind, prior = GENERATOR_KINDS[aug.needs[0]]
    if checkpoint is None:
        example = "checkpoints/mnist5k-aae-uniform-z16" if kind == "aae" else "checkpoints/mnist5k-vae-z16"
        raise ValueError(f"{aug.name} decodes latent codes and needs a generator checkpoint ({aug.needs[0]}): "
                         f"pass --checkpoint DIR, e.g. {example}")
    from core.checkpoints import Checkpoint, load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device="cpu")
    model = ckpt.model.config
    if model.kind != kind or (prior and model.prior != prior):
        want = "an AAE with a uniform prior" if prior else "a VAE"
        raise ValueError(f"{aug.name} needs {want}; {ckpt.name} is a {model.kind} (prior {model.prior})")
    return ckpt


def _per_class(labels: Tensor, n_per: int, gen: torch.Generator) -> Tensor:
    """n_per shot rows of each class, (C_present * n_per,) grouped by class: each class's rows in a random
    order, cycled, so every shot is used before any is used twice."""
    out = []
    for c in torch.unique(labels).tolist():
        own = torch.nonzero(labels == c).flatten()
        laps = -(-n_per // len(own))
        out.append(torch.cat([own[torch.randperm(len(own), generator=gen)] for _ in range(laps)])[:n_per])
    return torch.cat(out)


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


def _latent_rows(name: str, model, x: Tensor, labels: Tensor, n_classes: int, n_per: int, rng: torch.Generator,
                 params: dict):
    """Rebuild a latent method from core.latent's samplers, keeping sources (rows of x) and lam / alpha."""
    from core.augment.pixel import beta_sample
    from core.latent import encode_dataset, interpolate_latent, knn_interpolate, lsi_soft_label

    z = encode_dataset(model, x)                                                 # (N, d): VAE mu
    src = _per_class(labels, n_per, rng)                                         # (S,)
    none = torch.full_like(src, -1)
    if name == "lsi":
        if len(torch.unique(labels)) < 2:
            raise ValueError("lsi interpolates between classes: it needs examples of at least 2 classes")
        others = [torch.nonzero(labels != c).flatten() for c in labels[src].tolist()]
        partner = torch.stack([o[torch.randint(len(o), (1,), generator=rng)][0] for o in others])
        t = (torch.full((len(src),), float(params["lam"])) if params["lam"] is not None
             else beta_sample(rng, float(params["alpha"]), len(src)))           # weight of the partner
        z_new = interpolate_latent(z[src], z[partner], t, mode=params["mode"])
        y_new = lsi_soft_label(labels[src], labels[partner], t, n_classes)
        return _decoded(model, z_new, x), y_new, torch.stack([src, partner], 1), 1 - t, None
    if name == "vae-noise":
        sigma = float(params["sigma"])
        z_new = z[src] + sigma * torch.randn(len(src), z.shape[1], generator=rng)
        return (_decoded(model, z_new, x), F.one_hot(labels[src], n_classes).float(), torch.stack([src, none], 1),
                None, torch.full((len(src),), sigma))
    extrapolate = _family(name) == "vae-extrap"
    full = knn_interpolate(z, labels, alpha=1.0, k=int(params["k"]), generator=rng,
                           extrapolate=extrapolate, sources=src)                  # z_i -/+ (z_k - z_i)
    if len(full) == 0:
        raise ValueError(f"{name} needs at least 2 labelled examples of a class (a same-class neighbour)")
    a = float(params["alpha"])
    step = torch.rand(len(full), generator=rng) * a if params["random_alpha"] else torch.full((len(full),), a)
    z_src = z[full.source_index]
    z_new = z_src + step[:, None] * (full.z - z_src)
    if params["noise"] > 0:
        z_new = z_new + float(params["noise"]) * torch.randn(z_new.shape, generator=rng)
    lam = 1 + step if extrapolate else 1 - step
    return (_decoded(model, z_new, x), F.one_hot(full.label, n_classes).float(),
            torch.stack([full.source_index, full.neighbour_index], 1), lam, step)


def _decoded(model, z: Tensor, like: Tensor) -> Tensor:
    from core.latent import decode_latents

    return decode_latents(model, z).reshape(len(z), *like.shape[1:])
