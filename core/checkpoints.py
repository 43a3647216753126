"""Checkpoints: a folder with `model.safetensors` (weights) and `config.json` (everything else).

Never pickle: safetensors holds only tensors, JSON only data, so loading executes nothing from the files.
config.json records the sha256 of the weights file, so truncation or tampering is caught on load.
Saving writes a temporary folder and renames it into place: a crash never leaves a half-written checkpoint,
and an existing checkpoint is replaced only once the new one is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from core.config import ModelConfig, TrainConfig
from core.models import build_model

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT_DIR = REPO_ROOT / "checkpoints"  # shipped with the app
USER_CHECKPOINT_DIR = REPO_ROOT / "runs" / "checkpoints"  # trained or uploaded by the user (git-ignored)
WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT_VERSION = 1
MAX_ZIP_BYTES = 64 * 1024 * 1024  # uncompressed size of an uploaded checkpoint
REQUIRED_KEYS = ("format_version", "model", "dataset", "class_names", "weights_sha256")


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or does not match its model; the message names the problem."""


@dataclass
class Checkpoint:
    model: nn.Module  # in eval mode
    meta: dict  # the contents of config.json
    path: Path | None  # None for one loaded from an upload
    sha256: str  # of the weights file: a stable cache key

    @property
    def name(self) -> str:
        return self.path.name if self.path else self.meta.get("name", "upload")


@dataclass
class CheckpointInfo:
    path: Path
    name: str
    meta: dict


def library_versions() -> dict[str, str]:
    import numpy
    import safetensors

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "safetensors": safetensors.__version__}


def save_checkpoint(path: str | Path, model: nn.Module, *, train_config: TrainConfig | dict | None = None,
                    dataset_id: str = "", class_names: list[str] | None = None, metrics: dict | None = None,
                    history: dict | None = None, extra: dict | None = None) -> Path:
    """Write `path/` atomically and return it. An existing checkpoint there is replaced only on success."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = save_safetensors_bytes(state)
    train = train_config.to_dict() if isinstance(train_config, TrainConfig) else (train_config or {})
    meta = {
        "format_version": FORMAT_VERSION,
        "name": path.name,
        "model": model.config.to_dict(),
        "train": train,
        "dataset": dataset_id,
        "class_names": list(class_names or []),
        "metrics": metrics or {},
        "history": history or {},
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is an ordinary readable folder
    try:
        (tmp / WEIGHTS).write_bytes(weights)
        (tmp / CONFIG).write_text(json.dumps(meta, indent=1, default=_json_default))
        old = None
        if path.exists():
            # A unique name, not a fixed `.NAME.old`: two saves of the same name at once must not
            # delete each other's backup. rename(2) may replace the empty folder mkdtemp made.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _json_default(o):
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> Checkpoint:
    """Load a checkpoint folder; raise CheckpointError naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder (a checkpoint is a folder with {CONFIG} and {WEIGHTS})")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: {name} is missing; this is not a complete checkpoint folder")
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}/{CONFIG}: not valid JSON ({exc}); the file is damaged") from exc
    ckpt = _build(meta, (path / WEIGHTS).read_bytes(), str(path), device)
    ckpt.path = path
    return ckpt


def load_checkpoint_zip(data: bytes, device: str | torch.device | None = None) -> Checkpoint:
    """Load a zipped checkpoint folder from memory (an upload); nothing is written to disk."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise CheckpointError("the upload is not a zip file; zip the checkpoint folder "
                              f"(with {CONFIG} and {WEIGHTS}) and upload that") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise CheckpointError(f"the zip unpacks to more than {MAX_ZIP_BYTES >> 20} MB; that is not a Latent Lab checkpoint")
        by_name = {}
        for info in infos:
            base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
            if base in (CONFIG, WEIGHTS):
                if base in by_name:
                    raise CheckpointError(f"the zip holds more than one {base}; upload one checkpoint at a time")
                by_name[base] = info
        missing = [n for n in (CONFIG, WEIGHTS) if n not in by_name]
        if missing:
            raise CheckpointError(f"the zip lacks {', '.join(missing)}; a checkpoint folder holds {CONFIG} and {WEIGHTS}")
        try:
            meta = json.loads(zf.read(by_name[CONFIG]))
            weights = zf.read(by_name[WEIGHTS])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{CONFIG} in the zip is not valid JSON ({exc})") from exc
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(f"the zip is damaged ({exc})") from exc
    return _build(meta, weights, "upload", device)


def _build(meta, weights: bytes, where: str, device) -> Checkpoint:
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: {CONFIG} must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{where}: {CONFIG} lacks {missing}; was it written by Latent Lab?")
    if meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{where}: checkpoint format {meta['format_version']} is not supported (expected {FORMAT_VERSION})")
    digest = hashlib.sha256(weights).hexdigest()
    if digest != meta["weights_sha256"]:
        raise CheckpointError(f"{where}: {WEIGHTS} does not match the sha256 recorded in {CONFIG}; "
                              "the weights are truncated or were modified")
    try:
        cfg = ModelConfig.from_dict(meta["model"])
        model = build_model(cfg)
    except (TypeError, ValueError, RuntimeError, MemoryError) as exc:
        raise CheckpointError(f"{where}: the model config is invalid ({exc})") from exc
    try:
        state = load_safetensors_bytes(weights)
    except Exception as exc:  # safetensors raises its own error type for malformed headers
        raise CheckpointError(f"{where}: {WEIGHTS} is not a readable safetensors file ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise CheckpointError(f"{where}: the weights do not match the model in {CONFIG} ({first})") from exc
    from core.device import pick_device

    model.to(pick_device("auto") if device is None else torch.device(device)).eval()
    return Checkpoint(model=model, meta=meta, path=None, sha256=digest)


def list_checkpoints(*roots: str | Path) -> list[CheckpointInfo]:
    """Checkpoint folders directly under each root (default: shipped + user), sorted by name; damaged ones skipped."""
    roots = roots or (DEFAULT_CHECKPOINT_DIR, USER_CHECKPOINT_DIR)
    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
                continue
            try:
                meta = json.loads((folder / CONFIG).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(meta, dict):
                found.append(CheckpointInfo(path=folder, name=folder.name, meta=meta))
    return found


def zip_checkpoint(path: str | Path) -> bytes:
    """The checkpoint folder as zip bytes (for download / upload elsewhere)."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (CONFIG, WEIGHTS):
            zf.write(path / name, f"{path.name}/{name}")
    return buf.getvalue()
