"""Uploaded data sets, stored content-addressed under runs/data/<sha256>/ and loaded as `upload:<sha256>`.

A folder holds
  arrays.npz     X, y, class_names (plain arrays, no pickles; read back with allow_pickle=False), test_index
                 (rows of X held out as the test set) or X_test / y_test when the user gave a test set
  manifest.json  name, source file name, shapes, class names and counts, how it was made, the test split,
                 and `owners`: sha256 hashes of the owner keys that uploaded it (never a token itself)
The sha256 is over the validated arrays (dtype, shape and bytes of X, y, class names), so the same data stored
twice - by one session or two, from an .npz or a zip - is one folder; a second owner is added to `owners`.
Both files are written in a temporary folder and renamed into place: a reader sees a whole data set or none.

Who may see one is the caller's business (the app: ui.user_data_ops); `load` is for the server's own workers
and the CLI, which hold only hashes they were given.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from core.data import DatasetError
from core.files import atomic_write, folder_mode
from core.user_data import UserArrays

RUNS_ENV = "LATENT_LAB_RUNS"                   # the same runs folder as the app's (ui.catalog.RUNS_ENV)
PREFIX = "upload:"
SPLIT_SEED = 20240615                          # the test split of an upload without one: carved once, stored
TEST_FRACTION = 0.2
_SHA = re.compile(r"[0-9a-f]{64}")
_LOCK = threading.Lock()                        # owners are read-modify-written: one writer per process


def data_root() -> Path:
    root = Path(os.environ.get(RUNS_ENV, Path(__file__).resolve().parent.parent / "runs"))
    return root / "data"


def owner_hash(owner_key: str) -> str:
    """What a manifest stores of an owner: a hash, so that a manifest never reveals a browser's token."""
    return hashlib.sha256(f"latent-lab-owner:{owner_key}".encode()).hexdigest()


def content_hash(arrays: UserArrays) -> str:
    h = hashlib.sha256()
    for a in (arrays.x, arrays.y) + ((arrays.x_test, arrays.y_test) if arrays.x_test is not None else ()):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps([arrays.class_names, arrays.feature_names]).encode())
    return h.hexdigest()


def carve_test_split(y: np.ndarray, fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
    """Sorted rows held out as the test set: `fraction` of each class (at least 1, and at least 1 left to train),
    drawn with a fixed seed, so that the same data always gets the same split."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = min(max(1, int(round(fraction * len(rows)))), len(rows) - 1)
        test.append(rng.permutation(rows)[:k])
    return np.sort(np.concatenate(test)).astype(np.int64)


def _manifest(sha: str, arrays: UserArrays, name: str, test_index: np.ndarray | None, owners: list[str]) -> dict:
    counts = np.bincount(arrays.y, minlength=len(arrays.class_names)).tolist()
    if arrays.x_test is not None:
        split = {"kind": "given", "n_train": len(arrays.y), "n_test": len(arrays.y_test)}
    else:
        split = {"kind": "carved", "seed": SPLIT_SEED, "test_fraction": TEST_FRACTION,
                 "stratified": True, "n_train": len(arrays.y) - len(test_index), "n_test": len(test_index)}
    return {"sha256": sha, "spec": PREFIX + sha, "name": name, "source": arrays.source,
            "kind": "image" if arrays.is_image else "vector", "x_shape": list(arrays.x.shape),
            "x_dtype": str(arrays.x.dtype), "class_names": arrays.class_names, "class_counts": counts,
            "feature_names": arrays.feature_names, "how": arrays.how, "test_split": split,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "owners": owners}


def store(arrays: UserArrays, name: str, owners: list[str] | tuple[str, ...] = (), root: Path | None = None) -> dict:
    """Store validated arrays (or add `owners` to the copy already stored); returns the manifest."""
    root = Path(root) if root else data_root()
    sha = content_hash(arrays)
    folder = root / sha
    with _LOCK:
        if (folder / "manifest.json").is_file():
            manifest = read_manifest(sha, root)
            new = [o for o in owners if o not in manifest["owners"]]
            if new:
                manifest["owners"] = manifest["owners"] + new
                atomic_write(folder / "manifest.json", json.dumps(manifest, indent=1))
            return manifest
        root.mkdir(parents=True, exist_ok=True)
        test_index = carve_test_split(arrays.y) if arrays.x_test is None else None
        saved = {"X": arrays.x, "y": arrays.y, "class_names": np.asarray(arrays.class_names, dtype=str)}
        if test_index is not None:
            saved["test_index"] = test_index
        else:
            saved["X_test"], saved["y_test"] = arrays.x_test, arrays.y_test
        title = name.strip()[:100] or Path(arrays.source).stem[:100] or "data set"
        manifest = _manifest(sha, arrays, title, test_index, list(owners))
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}.", dir=root))
        try:
            os.chmod(tmp, folder_mode())
            buf = io.BytesIO()
            np.savez(buf, **saved)
            atomic_write(tmp / "arrays.npz", buf.getvalue())
            atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=1))
            os.replace(tmp, folder)   # the whole folder at once
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return manifest


def _folder(sha: str, root: Path | None) -> Path:
    if not _SHA.fullmatch(sha or ""):
        raise DatasetError(f"{PREFIX}{sha}: not a data set id (64 hex digits); pick the data set from the list")
    return (Path(root) if root else data_root()) / sha


def read_manifest(sha: str, root: Path | None = None) -> dict:
    path = _folder(sha, root) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{PREFIX}{sha[:12]}…: no such uploaded data set (deleted, or never uploaded here); "
                           f"upload it again on the Your data page") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{PREFIX}{sha[:12]}…: its manifest cannot be read ({exc}); delete and upload it "
                           f"again") from exc


def list_manifests(root: Path | None = None) -> list[dict]:
    """Every stored data set's manifest, newest first (unreadable folders skipped)."""
    root = Path(root) if root else data_root()
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if _SHA.fullmatch(folder.name):
            try:
                out.append(read_manifest(folder.name, root))
            except DatasetError:
                continue
    return sorted(out, key=lambda m: m.get("created", ""), reverse=True)


def visible(manifest: dict, owners: set[str] | frozenset[str], share_all: bool) -> bool:
    return share_all or bool(set(manifest.get("owners", [])) & set(owners))


def delete(sha: str, owners: set[str] | frozenset[str], root: Path | None = None) -> bool:
    """Remove these owners from a data set; the folder goes when no owner is left. True when it was removed."""
    folder = _folder(sha, root)
    with _LOCK:
        manifest = read_manifest(sha, root)
        left = [o for o in manifest.get("owners", []) if o not in owners]
        if left:
            manifest["owners"] = left
            atomic_write(folder / "manifest.json", json.dumps(manifest, indent=1))
            return False
        trash = folder.with_name(f".{sha[:12]}.deleted.{os.getpid()}.{threading.get_ident()}")
        os.replace(folder, trash)     # gone from listings at once, then removed
        shutil.rmtree(trash, ignore_errors=True)
        return True


def load_arrays(sha: str, train: bool = True, root: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X, y, class_names) of the train part (train=True) or the test part, read without pickles."""
    folder = _folder(sha, root)
    read_manifest(sha, root)   # the clear "no such data set" message
    with np.load(folder / "arrays.npz", allow_pickle=False) as f:
        names = [str(s) for s in f["class_names"]]
        if "test_index" in f.files:
            x, y, test = f["X"], f["y"], f["test_index"]
            keep = np.ones(len(y), dtype=bool)
            keep[test] = False
            rows = np.flatnonzero(keep) if train else test
            return x[rows], y[rows], names
        return (f["X"], f["y"], names) if train else (f["X_test"], f["y_test"], names)


def load(spec: str, train: bool = True, root: Path | None = None):
    """`upload:<sha256>` -> core.data.Dataset (its train part, or its test part with train=False)."""
    import torch

    from core.data import Dataset, dataset_from_arrays

    sha = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    x, y, names = load_arrays(sha, train, root)
    if x.ndim == 2:   # vectors: standardised with the train part's statistics, so train and test agree
        xt, _, _ = load_arrays(sha, True, root) if not train else (x, y, names)
        mean, std = xt.mean(0), xt.std(0)
        std[std == 0] = 1.0
        features = [str(f) for f in read_manifest(sha, root).get("feature_names") or []]
        return Dataset(PREFIX + sha, torch.from_numpy(((x - mean) / std).astype(np.float32)),
                       torch.as_tensor(y.astype(np.int64)), names,
                       features if len(features) == x.shape[1] else [f"f{i}" for i in range(x.shape[1])])
    return dataset_from_arrays(PREFIX + sha, {"X": x, "y": y, "class_names": np.asarray(names)})
