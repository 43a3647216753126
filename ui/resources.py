"""Cached loaders at the UI edge: models (st.cache_resource), datasets, latents (st.cache_data).

Models are cached per (checkpoint path, sha256 of its weights file), so a retrained checkpoint in
the same folder is never served stale. Uploaded checkpoints live in memory only, in a small
process-wide registry keyed by the sha256 of the uploaded bytes (never by the file's name).

Every cache here is bounded: st.cache_* by max_entries, the process-wide memos (datasets,
uploads, weight hashes) by entries and bytes (ui.lru.Lru, least recently used out first).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ui import catalog
from ui.lru import Lru

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # keep in step with server.maxUploadSize
MAX_UPLOADS = 8  # in-memory uploaded checkpoints kept per process ...
# ... and at most this many bytes of them, counted as they lie in memory: the zip (kept for worker jobs) plus the
# model's weights unpacked (a 60 KB zip of zeros can unpack to 64 MB of weights).
MAX_UPLOAD_TOTAL_BYTES = 4 * MAX_UPLOAD_BYTES
MAX_SHA_MEMO = 256  # weight-file hashes remembered (path, mtime, size) -> sha256
MAX_DATASETS = 4  # loaded datasets kept per process ...
MAX_DATASET_BYTES = 1 << 30  # ... and at most 1 GiB of their tensors (CIFAR-10 alone is ~600 MB)


class UiError(ValueError):
    """Something the user can fix; pages show it with st.error."""


@dataclass(frozen=True)
class ModelRef:
    """A checkpoint as the caches see it: its key ("shipped/NAME", "runs/NAME", "upload/SHA12") and the
    sha256 of its weights, so a retrained checkpoint in the same folder is never served stale. Frozen and
    hashable: st.cache_data keys on it, and it replaces the (key, sha) argument pairs."""

    key: str
    sha256: str

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[-1]


def model_ref(key: str) -> ModelRef:
    """The reference of the checkpoint `key` (loads it if needed; UiError if unknown or broken)."""
    return ModelRef(key, checkpoint(key).sha256)


def model_source(ref: ModelRef) -> str | bytes:
    """What a worker process loads the checkpoint from: its folder's path, or an upload's zip bytes
    (uploads live only in this process's memory)."""
    if ref.key.startswith("upload/"):
        found = _upload_registry().get(ref.key)
        if found is None:
            raise UiError("That uploaded checkpoint is no longer in memory; upload it again.")
        return found[2]
    entry = catalog.find(entries(), ref.key)
    if entry is None:
        raise UiError(f"Unknown checkpoint {ref.key!r}; pick one in the sidebar.")
    return str(entry.path)


# ----------------------------------------------------------------------------- hashing

_sha_memo = Lru(MAX_SHA_MEMO)


def weights_sha256(folder: str) -> str:
    """sha256 of folder/model.safetensors, memoised on (path, mtime, size)."""
    f = Path(folder) / "model.safetensors"
    st_ = f.stat()
    key = (str(f), st_.st_mtime_ns, st_.st_size)
    return _sha_memo.get_or_create(key, lambda: hashlib.sha256(f.read_bytes()).hexdigest())


# ----------------------------------------------------------------------------- uploads


@st.cache_resource(max_entries=1)
def _upload_registry() -> Lru:
    """Shared by every session: key -> (Checkpoint, bytes it holds in memory (upload_bytes), its zip bytes
    for worker jobs), least recently used out first."""
    return Lru(MAX_UPLOADS, MAX_UPLOAD_TOTAL_BYTES, size=lambda v: v[1])


def upload_bytes(model, data: bytes) -> int:
    """What an upload holds in memory: its zip bytes plus its model's unpacked weights (parameters, buffers)."""
    return len(data) + sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _my_uploads(reg: Lru) -> list[str]:
    """This session's upload keys that the registry still holds (evicted ones are dropped from the list)."""
    mine = [k for k in st.session_state.get("_ll_uploads", []) if k in reg][-MAX_UPLOADS:]
    st.session_state["_ll_uploads"] = mine
    return mine


def upload_metas() -> dict[str, dict]:
    """Uploaded checkpoints of *this* session: key -> meta (for the pickers)."""
    reg = _upload_registry()
    with reg.lock:
        found = {k: reg.get(k) for k in _my_uploads(reg)}
    return {k: c[0].meta for k, c in found.items() if c is not None}


def register_upload(data: bytes) -> str:
    """Validate an uploaded zipped checkpoint in memory; returns its key "upload/SHA12".

    Raises UiError with a message for the user. Nothing is written to disk."""
    if len(data) == 0:
        raise UiError("The uploaded file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UiError(f"The file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
    if not data.startswith(b"PK\x03\x04"):
        raise UiError("That is not a zip file. Zip a checkpoint folder (config.json + model.safetensors) and upload it.")
    from core.checkpoints import load_checkpoint_zip

    try:
        ckpt = load_checkpoint_zip(data, device="cpu")
    except ValueError as e:  # CheckpointError is a ValueError
        raise UiError(f"Not a valid checkpoint: {e}") from None
    size = upload_bytes(ckpt.model, data)  # before placement: the CPU model's own tensors
    ckpt.model = _placed(ckpt.model)
    key = "upload/" + hashlib.sha256(data).hexdigest()[:12]
    reg = _upload_registry()
    reg.put(key, (ckpt, size, data))
    mine = [k for k in st.session_state.get("_ll_uploads", []) if k != key] + [key]
    st.session_state["_ll_uploads"] = mine
    _my_uploads(reg)
    return key


# ----------------------------------------------------------------------------- models


def _placed(model):
    """Where a loaded model is put on its device before any page uses it. The one place for GPU placement
    (a shared copy per checkpoint on the GPU when there is one, CPU fallback): core.placement.place returns the
    CPU model itself without a GPU, else a stand-in with the model's interface (CPU tensors in and out)
    computed on the shared GPU copy, answering from the CPU on out-of-memory or a CUDA error."""
    from core.placement import place

    return place(model)


@st.cache_resource(max_entries=12, show_spinner="Loading checkpoint…")
def _load_checkpoint(path: str, sha256: str):
    from core.checkpoints import load_checkpoint

    ckpt = load_checkpoint(path, device="cpu")
    ckpt.model = _placed(ckpt.model)
    return ckpt


def entries() -> list[catalog.CheckpointEntry]:
    return catalog.scan(upload_metas())


def checkpoint(key: str):
    """key -> core Checkpoint (.model, .meta, .sha256). Raises UiError if unknown/broken."""
    if key and key.startswith("upload/"):
        found = _upload_registry().get(key)
        if found is None:
            raise UiError("That uploaded checkpoint is no longer in memory; upload it again.")
        return found[0]
    entry = catalog.find(entries(), key)
    if entry is None:
        raise UiError(f"Unknown checkpoint {key!r}; pick one in the sidebar.")
    try:
        return _load_checkpoint(entry.path, weights_sha256(entry.path))
    except (OSError, ValueError) as e:
        raise UiError(f"Could not load checkpoint {entry.name}: {e}") from None


def checkpoint_sha(key: str) -> str:
    return checkpoint(key).sha256


# ----------------------------------------------------------------------------- data


def _dataset_bytes(ds) -> int:
    return sum(t.element_size() * t.nelement() for t in (ds.x, ds.y))


@st.cache_resource(max_entries=1)
def _datasets() -> Lru:
    """Loaded datasets shared by every session: spec -> Dataset, bounded by count and bytes."""
    return Lru(MAX_DATASETS, MAX_DATASET_BYTES, size=_dataset_bytes)


def _load_dataset(spec: str):
    from core.data import load_dataset

    with st.spinner("Loading dataset…"):
        return load_dataset(spec)


def dataset(spec: str):
    """Shared, read-only Dataset (never modify its tensors)."""
    try:
        return _datasets().get_or_create(spec, lambda: _load_dataset(spec))
    except ValueError as e:
        raise UiError(str(e)) from None
    except OSError as e:
        raise UiError(f"Could not read dataset {spec!r}: {e}") from None


def check_compatible(key: str, spec: str):
    """-> (checkpoint, dataset) or UiError if the model cannot read this dataset."""
    ckpt = checkpoint(key)
    ds = dataset(spec)
    shape = tuple(ckpt.model.config.input_shape)
    if shape != tuple(ds.input_shape):
        raise UiError(f"Checkpoint {key.split('/', 1)[1]} reads inputs of shape {shape}, but {spec} has "
                      f"{tuple(ds.input_shape)}. Pick a checkpoint trained on {spec} (or train one).")
    return ckpt, ds


LATENTS_START_S = 5.0   # how long a page waits for a free worker before it encodes in the server itself


@st.cache_data(max_entries=24, show_spinner="Encoding the dataset in a worker process…")
def latents(ref: ModelRef, spec: str) -> np.ndarray:
    """(N, d) float32 latents of the whole dataset (VAE: means). Keyed by the checkpoint's sha256.

    Encoded by a worker process (core.latent.latents_job, at the front of the queue: a page waits for it),
    so the web server does not run the encoder. When no worker frees up within LATENTS_START_S (every worker
    busy with trainings or runs) or the job fails, the server encodes itself: a page should not wait minutes
    for a few seconds of work, and a real error then shows where it happens."""
    from core.executor import DONE
    from core.latent import encode_dataset, latents_job
    from ui import background

    ckpt, ds = check_compatible(ref.key, spec)
    job = background.submit("latents", (ref.sha256, spec), latents_job,
                            {"checkpoint": model_source(ref), "dataset": spec}, urgent=True)
    deadline = time.time() + LATENTS_START_S
    while not job.done and (job.started_at is not None or time.time() < deadline):
        job.wait(0.2)
    if job.status == DONE:
        return job.result()
    return encode_dataset(ckpt.model, ds.x).numpy()


def labels(spec: str) -> np.ndarray:
    return dataset(spec).y.numpy()


class friendly:
    """`with friendly("The map"):` — show a user-facing st.error instead of a traceback when a
    section fails on bad input (ValueError / RuntimeError, which core raises with a message)."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            return False
        if issubclass(exc_type, UiError):
            st.error(str(exc))
            return True
        if issubclass(exc_type, (ValueError, RuntimeError, np.linalg.LinAlgError)):
            st.error(f"{self.what} failed: {exc}")
            return True
        return False  # st.stop / st.rerun and real bugs pass through


def page_inputs(sel):
    """The sidebar's checkpoint, dataset and latents -> (checkpoint, dataset, z (N, d) numpy).

    Stops the page with a message saying what to do when there is no checkpoint or it does not fit the data.
    """
    from ui.state import stop_page

    if sel.ckpt is None:
        st.info("No checkpoint for this dataset: train or upload one on **Train or load**.")
        stop_page()
    try:
        ckpt, ds = check_compatible(sel.ckpt, sel.dataset)
        return ckpt, ds, latents(ModelRef(sel.ckpt, ckpt.sha256), sel.dataset)
    except UiError as e:
        st.error(str(e))
        stop_page()
