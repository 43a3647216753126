"""Which checkpoints and datasets exist — plain files and JSON, no torch.

The home page and the sidebar use this, so `streamlit run app.py` never imports torch to
draw them. A checkpoint is addressed by a *key* ("shipped/NAME", "runs/NAME" or
"upload/SHA12"); a key that came from the URL is only ever looked up in the scanned list,
never joined into a path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_ENV = "LATENT_LAB_CHECKPOINTS"  # extra/replacement shipped root(s), os.pathsep-separated
RUNS_ENV = "LATENT_LAB_RUNS"  # where user checkpoints, caches and few-shot runs go

# Registry ids of core.data (kept here so the home page needs no torch); the pages
# ask core.data.list_datasets() for the authoritative list.
DATASETS = ("mnist5k", "digits", "mnist", "fashion-mnist", "cifar10", "breast-cancer", "wine")
DEFAULT_DATASET = "mnist5k"
# Preferred default checkpoint names, best first.
DEFAULT_CHECKPOINTS = ("mnist5k-aae-uniform-z16", "mnist5k-aae-uniform-z2", "mnist5k-vae-z16")
# The hole-effect comparison: one of each prior, 2-d so the raw axes show the holes.
HOLE_SET = ("mnist5k-ae-z2", "mnist5k-aae-gaussian-z2", "mnist5k-aae-uniform-z2", "mnist5k-vae-z2")


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
    def label(self) -> str:
        m = self.meta.get("model", {})
        kind = m.get("kind", "?")
        desc = kind.upper()
        if kind == "aae":
            desc += f"-{m.get('prior', '?')}"
        elif kind == "vae":
            desc = f"beta-VAE (beta={m.get('beta', 1)})"
        where = self.key.split("/", 1)[0]
        return f"{self.name}  ·  {desc}, z={m.get('latent_dim', '?')}  [{where}]"


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


def scan(uploads: dict[str, dict] | None = None) -> list[CheckpointEntry]:
    """All checkpoints on disk (shipped first, then user-trained), plus in-memory uploads."""
    out: list[CheckpointEntry] = []
    for prefix, roots in (("shipped", shipped_roots()), ("runs", [user_checkpoint_dir()])):
        for root in roots:
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                meta = _read_meta(folder)
                if meta is not None:
                    out.append(CheckpointEntry(f"{prefix}/{folder.name}", folder.name, str(folder), meta))
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


def find(entries: list[CheckpointEntry], key: str | None) -> CheckpointEntry | None:
    return next((e for e in entries if e.key == key), None)
