"""Checkpoints: a folder with `model.safetensors` (weights) and `config.json` (everything else).

Never pickle: safetensors holds only tensors, JSON only data, so loading executes nothing from the files.
config.json records the sha256 of the weights file, so truncation or tampering is caught on load.
Saving writes a temporary folder and renames it into place: a crash never leaves a half-written checkpoint,
and an existing checkpoint is replaced only once the new one is complete. Saving never replaces what Latent Lab
did not write (a file, a folder holding anything but a checkpoint's two files): like pip and git, it refuses.

Loading validates before it allocates (as safetensors does): config.json is turned into the model's skeleton on
torch's "meta" device (shapes only, no memory), its size is capped (MAX_PARAMETER_BYTES), and every tensor the
safetensors header lists is compared with it by name and shape; only then are tensors read and the model built.
A 684-byte upload whose config claims billions of parameters is refused in milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
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
from core.files import folder_mode
from core.models import MODELS, build_model

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT_DIR = REPO_ROOT / "checkpoints"  # shipped with the app
USER_CHECKPOINT_DIR = REPO_ROOT / "runs" / "checkpoints"  # trained or uploaded by the user (git-ignored)
WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT_VERSION = 1
MAX_ZIP_BYTES = 64 * 1024 * 1024  # uncompressed size of an uploaded checkpoint
# The largest model a checkpoint may hold (parameters and buffers, as config.json implies them). The shipped
# models are ~1 MB; an MLP VAE at the widest hidden layer (MAX_HIDDEN 8192) on CIFAR-sized inputs is ~200 MB.
# ModelConfig's bounds alone allow ~3.3e9 parameters (12 GiB), which one visitor's upload must not allocate.
MAX_PARAMETER_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024  # a safetensors header lists names, shapes and offsets: a few KB for our models
# safetensors dtype names -> bytes per value (https://github.com/huggingface/safetensors, format section)
SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                        "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
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
                    history: dict | None = None, extra: dict | None = None, overwrite: bool = True) -> Path:
    """Write `path/` atomically and return it. An existing checkpoint there is replaced only on success and
    only with `overwrite`; anything else at `path` (a file, a folder with other files) is never replaced:
    CheckpointError (see check_out_path)."""
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
    tmp.chmod(folder_mode())  # mkdtemp makes it private; a checkpoint is an ordinary folder (the umask's mode)
    try:
        (tmp / WEIGHTS).write_bytes(weights)
        (tmp / CONFIG).write_text(json.dumps(meta, indent=1, default=_json_default))
        check_out_path(path, overwrite)  # checked last: the closest to the rename below
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


def _is_our_checkpoint(path: Path) -> bool:
    """A folder holding exactly a checkpoint's two files, its config.json written by Latent Lab."""
    if sorted(p.name for p in path.iterdir()) != sorted((CONFIG, WEIGHTS)):
        return False
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and all(k in meta for k in REQUIRED_KEYS)


def check_out_path(path: str | Path, overwrite: bool = False) -> None:
    """Refuse, before any work, an output path that saving a checkpoint must not replace (CheckpointError).

    Free to write: a path that does not exist, or an empty folder. Refused always: a file, a link, a folder
    holding anything but a checkpoint (never delete what we did not create). Refused unless `overwrite`: a
    checkpoint folder (it would be replaced once the new checkpoint is complete)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise CheckpointError(f"{path} exists and is not a checkpoint folder; choose another output path "
                              "(it was left as it is)")
    if not path.exists() or not any(path.iterdir()):
        return
    if not _is_our_checkpoint(path):
        names = sorted(p.name for p in path.iterdir())
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise CheckpointError(f"{path} is a folder that is not a Latent Lab checkpoint (it holds {shown}); choose "
                              "another output path: Latent Lab replaces only its own checkpoints, never other files")
    if not overwrite:
        raise CheckpointError(f"{path} already holds a checkpoint; pass --overwrite (overwrite=True) to replace "
                              "it, or choose another output path")


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
    if (path / WEIGHTS).stat().st_size > MAX_PARAMETER_BYTES + MAX_HEADER_BYTES + 8:  # before reading it
        raise CheckpointError(f"{path}: {WEIGHTS} is larger than the {MAX_PARAMETER_BYTES >> 20} MB of weights "
                              "Latent Lab loads")
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
        expected = model_skeleton(cfg)  # names -> shapes, on the meta device: no memory yet
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: the model config is invalid ({exc})") from exc
    try:
        check_model_size(cfg, expected)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc
    try:
        header = safetensors_header(weights)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {WEIGHTS} is not a readable safetensors file ({exc})") from exc
    mismatch = _shape_mismatch(header, expected)
    if mismatch:
        raise CheckpointError(f"{where}: the weights do not match the model in {CONFIG} ({mismatch})")
    # Validated: the tensors read now are exactly the model's, at most MAX_PARAMETER_BYTES of them.
    try:
        state = load_safetensors_bytes(weights)
    except Exception as exc:  # safetensors raises its own error type for malformed files
        raise CheckpointError(f"{where}: {WEIGHTS} is not a readable safetensors file ({exc})") from exc
    model = build_model(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise CheckpointError(f"{where}: the weights do not match the model in {CONFIG} ({first})") from exc
    from core.device import pick_device

    model.to(pick_device("auto") if device is None else torch.device(device)).eval()
    return Checkpoint(model=model, meta=meta, path=None, sha256=digest)


def model_skeleton(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], int]]:
    """The state dict `build_model(cfg)` would have, as {name: (shape, bytes per value)}, without allocating:
    the model is built on torch's meta device (tensors with shapes and no storage; ~5 ms for any size)."""
    with torch.device("meta"):
        skeleton = MODELS[cfg.kind](cfg)
    return {k: (tuple(v.shape), v.element_size()) for k, v in skeleton.state_dict().items()}


def check_model_size(cfg: ModelConfig, skeleton: dict | None = None) -> int:
    """The bytes of the model `cfg` describes; ValueError past MAX_PARAMETER_BYTES (nothing is allocated)."""
    skeleton = model_skeleton(cfg) if skeleton is None else skeleton
    n_bytes = sum(math.prod(shape) * size for shape, size in skeleton.values())
    if n_bytes > MAX_PARAMETER_BYTES:
        n_values = sum(math.prod(shape) for shape, _ in skeleton.values())
        raise ValueError(f"the model has {n_values:,} parameters ({n_bytes / 2**20:,.0f} MB); Latent Lab loads and "
                         f"trains models up to {MAX_PARAMETER_BYTES >> 20} MB: choose a smaller hidden or latent_dim")
    return n_bytes


def safetensors_header(weights: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header, reading no tensor (ValueError if malformed).

    The format: an 8-byte little-endian header length N, N bytes of JSON {name: {"dtype", "shape",
    "data_offsets": [begin, end]}, "__metadata__": {...}}, then the tensors' bytes."""
    if len(weights) < 8:
        raise ValueError(f"{len(weights)} bytes, too short for a header")
    n = int.from_bytes(weights[:8], "little")
    if n > min(MAX_HEADER_BYTES, len(weights) - 8):
        raise ValueError(f"header length {n} is larger than the file or {MAX_HEADER_BYTES >> 10} KB")
    try:
        header = json.loads(weights[8:8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    data_bytes, out = len(weights) - 8 - n, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (dtype in SAFETENSORS_ITEMSIZE and all(type(s) is int and s >= 0 for s in shape)
                  and type(begin) is int and type(end) is int and 0 <= begin <= end <= data_bytes
                  and end - begin == math.prod(shape) * SAFETENSORS_ITEMSIZE[dtype])
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"tensor {name!r} has a malformed entry {str(entry)[:100]}")
        out[name] = (dtype, tuple(shape))
    return out


def _shape_mismatch(header: dict, expected: dict) -> str:
    """'' when the file holds exactly the expected tensors with the expected shapes, else what differs."""
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        return "; ".join(part for part in (f"missing {missing[:3]}" if missing else "",
                                           f"unexpected {extra[:3]}" if extra else "") if part)
    for name, (shape, _) in expected.items():
        if header[name][1] != shape:
            return f"{name} has shape {list(header[name][1])} in {WEIGHTS}, the config implies {list(shape)}"
    return ""


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
