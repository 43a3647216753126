"""Which checkpoints and datasets exist — plain files and JSON.

The home page and the sidebar use this, and draw without torch: the dataset ids come from core.data's
registry (torch-free to read), a checkpoint's sidebar label from its config.json alone (kind and latent
size). Its full description ("AAE · uniform prior", "beta-VAE (beta=4)") comes from the kind's registered
config (core.models, which imports torch): `CheckpointEntry.description`, for pages that load models anyway. A checkpoint is addressed by a *key* ("shipped/NAME", "runs/NAME" or "upload/SHA12"); a key that
came from the URL is only ever looked up in the scanned list, never joined into a path.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_ENV = "LATENT_LAB_CHECKPOINTS"  # extra/replacement shipped root(s), os.pathsep-separated
RUNS_ENV = "LATENT_LAB_RUNS"  # where user checkpoints, caches and few-shot runs go

DEFAULT_DATASET = "mnist5k"
# Preferred default checkpoint names, best first.
DEFAULT_CHECKPOINTS = ("mnist5k-aae-uniform-z16", "mnist5k-aae-uniform-z2", "mnist5k-vae-z16")
# The hole-effect comparison: one of each way of shaping the codes, 2-d so the raw axes show the holes.
HOLE_SET = ("mnist5k-ae-z2", "mnist5k-aae-gaussian-z2", "mnist5k-aae-uniform-z2", "mnist5k-vae-z2",
            "mnist5k-wae-z2")
# The beta maps (seed 002): beta-VAEs at z = 2 with beta 0.5, 1, 4, 16 (`make beta-checkpoints`).
BETA_SET = ("mnist5k-vae-beta0.5-z2", "mnist5k-vae-z2", "mnist5k-vae-beta4-z2", "mnist5k-vae-beta16-z2")


@dataclass(frozen=True)
class CheckpointEntry:
    key: str  # "shipped/NAME" | "runs/NAME" | "upload/SHA12"
    name: str
    path: str | None  # folder; None for an upload held in memory
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def dataset(self) -> str:
        return str(self.meta.get("dataset", "?"))

    @property
    def latent_dim(self) -> int:
        return int(self.meta.get("model", {}).get("latent_dim", 0))

    @property
    def kind(self) -> str:
        return str(self.meta.get("model", {}).get("kind", "?"))

    @property
    def beta(self) -> float | None:
        """The KL weight of a model whose kind has one (a beta-VAE); None for other kinds."""
        value = model_setting(self.meta.get("model", {}), "beta")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def label(self) -> str:
        """The sidebar's label: from config.json alone (no registry, no torch), so the home page stays light."""
        m = self.meta.get("model", {})
        where = self.key.split("/", 1)[0]
        return f"{self.name}  ·  {str(m.get('kind', '?')).upper()}, z={m.get('latent_dim', '?')}  [{where}]"

    @property
    def description(self) -> str:
        """What the model is, from its kind's registered config (imports the model registry)."""
        return describe_model(self.meta.get("model", {}))


# ----------------------------------------------------------------------------- the registries, read lazily

def dataset_ids() -> tuple[str, ...]:
    """The dataset registry's ids (core.data, readable without torch), in registration order."""
    from core.data import list_datasets

    return tuple(list_datasets())


def __getattr__(name: str):  # PEP 562: `catalog.DATASETS` reads the registry when first used, not at import
    if name == "DATASETS":
        return dataset_ids()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=512)
def _model_config(frozen: str):
    from core.config import ModelConfig

    try:
        return ModelConfig.from_dict(json.loads(frozen))
    except (ValueError, TypeError):  # an unknown kind (a newer checkpoint) or a damaged config
        return None


def model_config(model: dict):
    """The registered config of a checkpoint's "model" dict, or None when it names no known kind / is bad.
    Memoised on the dict's JSON (the configs are only read, never changed)."""
    try:
        return _model_config(json.dumps(model, sort_keys=True))
    except (TypeError, ValueError):
        return None


def describe_model(model: dict) -> str:
    """A short label from the kind's registered config ("AAE · uniform prior", "beta-VAE (beta=4)"); for a
    kind this version does not know, its name."""
    cfg = model_config(model) if isinstance(model, dict) else None
    return cfg.describe() if cfg is not None else f"{str(model.get('kind', '?')).upper()} (unknown kind)"


def model_setting(model: dict, name: str):
    """A setting of the checkpoint's model as its kind's config has it (None when that kind has no such
    setting): a flat legacy dict's beta of an AAE, which no AAE ever read, is None."""
    cfg = model_config(model) if isinstance(model, dict) else None
    return getattr(cfg, name, None) if cfg is not None else None


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV, ROOT / "runs"))


def user_checkpoint_dir() -> Path:
    return runs_dir() / "checkpoints"


def shipped_roots() -> list[Path]:
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [ROOT / "checkpoints"]


def _read_meta(folder: Path) -> dict | None:
    cfg = folder / "config.json"
    if not cfg.is_file() or not (folder / "model.safetensors").is_file():
        return None
    try:
        meta = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("model"), dict) else None


def _scan_disk(roots: tuple[tuple[str, Path], ...]) -> list[CheckpointEntry]:
    """Read every checkpoint folder's config.json under the roots (the slow part: one file per folder)."""
    out: list[CheckpointEntry] = []
    for prefix, root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            meta = _read_meta(folder)
            if meta is not None:
                out.append(CheckpointEntry(f"{prefix}/{folder.name}", folder.name, str(folder), meta))
    return out


# The disk scan is cached per set of roots and re-done only when a root's mtime changes (a checkpoint
# folder added, removed or replaced: save_checkpoint renames its folder into place, which touches the
# root), when SCAN_TTL_S has passed (a config.json edited in place inside its folder), or after
# invalidate(). A rerun of a page therefore costs one stat per root, not one read per checkpoint.
SCAN_TTL_S = 60.0
MAX_SCAN_CACHE = 8  # distinct root sets (environments) remembered
_RACY_S = 2.0  # a root changed this recently may change again within the same mtime tick: do not trust it
_scan_lock = threading.Lock()
_scan_cache: "OrderedDict[tuple, tuple[tuple, float, list[CheckpointEntry]]]" = OrderedDict()


def _signature(roots) -> tuple:
    sig = []
    for _, root in roots:
        try:
            sig.append(root.stat().st_mtime_ns)
        except OSError:
            sig.append(None)
    return tuple(sig)


def invalidate() -> None:
    """Forget the cached scan (call after writing into a checkpoint folder in place)."""
    with _scan_lock:
        _scan_cache.clear()


def scan(uploads: dict[str, dict] | None = None) -> list[CheckpointEntry]:
    """All checkpoints on disk (shipped first, then user-trained), plus in-memory uploads.

    The on-disk part is cached (see SCAN_TTL_S above); the list returned is the caller's own."""
    roots = tuple(("shipped", r) for r in shipped_roots()) + (("runs", user_checkpoint_dir()),)
    ident = tuple((p, str(r)) for p, r in roots)
    sig, now = _signature(roots), time.time()
    with _scan_lock:
        hit = _scan_cache.get(ident)
        if hit is not None and hit[0] == sig and now - hit[1] < SCAN_TTL_S:
            _scan_cache.move_to_end(ident)
            found = hit[2]
        else:
            found = None
    if found is None:
        found = _scan_disk(roots)
        newest = max((m for m in sig if m is not None), default=0) / 1e9
        if now - newest > _RACY_S:  # only a settled folder is cached
            with _scan_lock:
                _scan_cache[ident] = (sig, now, found)
                _scan_cache.move_to_end(ident)
                while len(_scan_cache) > MAX_SCAN_CACHE:
                    _scan_cache.popitem(last=False)
    out = list(found)
    for key, meta in (uploads or {}).items():
        out.append(CheckpointEntry(key, key.split("/", 1)[1], None, meta))
    return out


def default_key(entries: list[CheckpointEntry], dataset: str | None = None) -> str | None:
    """The preferred shipped checkpoint, else the first one for `dataset`, else the first."""
    by_name = {e.name: e for e in entries if e.key.startswith("shipped/")}
    for name in DEFAULT_CHECKPOINTS:
        if name in by_name and (dataset is None or by_name[name].dataset == dataset):
            return by_name[name].key
    pool = [e for e in entries if dataset is None or e.dataset == dataset] or entries
    return pool[0].key if pool else None


def beta_vaes(entries: list[CheckpointEntry], dataset: str, latent_dim: int = 2) -> list[CheckpointEntry]:
    """Models with a KL weight beta (beta-VAEs) of one latent size trained on `dataset`, by increasing beta
    (the beta maps' candidates)."""
    pool = [e for e in entries if e.dataset == dataset and e.latent_dim == latent_dim and e.beta is not None]
    return sorted(pool, key=lambda e: (e.beta, e.key))


def find(entries: list[CheckpointEntry], key: str | None) -> CheckpointEntry | None:
    return next((e for e in entries if e.key == key), None)
