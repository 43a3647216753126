"""A user's own data set, parsed and validated in memory: .npz, .csv, a .zip (or folder) of image folders
(core.user_images), an IDX pair.

Every parser takes bytes (what a browser upload or a CLI file holds) and returns `UserArrays`, checked before
anything is written: caps on the file, rows, features and classes; at least 2 classes with 2 examples each; no
NaN / inf; numeric arrays only (an .npz is read with allow_pickle=False); a zip's members inside the archive, not
links, and within a decompressed-size cap read from its directory and enforced again while reading. Each failure
is a DatasetError whose message says what to do. Nothing here touches the disk (core.data_store stores).

Shapes kept: images as uint8 (N, C, H, W) (C = 1 grey or 3 RGB), or float32 (N, C, H, W) in [0, 1] from an .npz;
vectors as float32 (N, F), raw (core.data standardises them when it builds a Dataset); y int64 (N,) in
[0, len(class_names)).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import zipfile
from dataclasses import dataclass, field

import numpy as np

from core.data import MAX_CLASSES, DatasetError, _read_idx_stream, check_data_size, npz_members_checked

MAX_UPLOAD_BYTES = 512 * 1024 * 1024   # the file itself, as sent
MAX_ROWS = 200_000                       # 3x MNIST's 70k; a bigger set is subsampled first
MAX_FEATURES = 3 * 256 * 256             # a 256x256 RGB image, or a table this wide
MIN_PER_CLASS = 2


@dataclass
class UserArrays:
    """A validated data set, still plain numpy: what core.data_store hashes and stores."""
    x: np.ndarray                    # uint8 / float32 (N, C, H, W) images, or float32 (N, F) vectors
    y: np.ndarray                    # int64 (N,)
    class_names: list[str]
    source: str                      # the file name the user gave (shown, never used as a path)
    how: dict = field(default_factory=dict)   # how it was made: kind, options, skipped files
    feature_names: list[str] = field(default_factory=list)  # a CSV's columns; empty for images
    x_test: np.ndarray | None = None  # a test set the user gave (npz X_test / y_test), else None
    y_test: np.ndarray | None = None

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4


# --- checks shared by every kind -----------------------------------------------------------------

def check_file_size(name: str, n_bytes: int) -> None:
    if n_bytes > MAX_UPLOAD_BYTES:
        raise DatasetError(f"{name}: {n_bytes / 2**20:,.0f} MB is over the {MAX_UPLOAD_BYTES >> 20} MB limit "
                           f"for one file; subsample it first")
    if n_bytes == 0:
        raise DatasetError(f"{name}: the file is empty")


def check_arrays(name: str, x: np.ndarray, y: np.ndarray, class_names: list[str], what: str = "") -> None:
    """The caps and rules every kind shares; `what` names the part ("test set") in the message."""
    part = f" ({what})" if what else ""
    if x.dtype.kind not in "uif":
        raise DatasetError(f"{name}{part}: X must be numeric, got dtype {x.dtype}; save plain numbers")
    if y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"{name}{part}: need one label per row; got X {x.shape}, y {y.shape}")
    if len(x) > MAX_ROWS:
        raise DatasetError(f"{name}{part}: {len(x):,} rows is over the {MAX_ROWS:,} limit; subsample it first")
    n_features = int(np.prod(x.shape[1:]))
    if n_features > MAX_FEATURES or n_features < 1:
        raise DatasetError(f"{name}{part}: {n_features:,} values per row; Latent Lab takes 1 to {MAX_FEATURES:,} "
                           f"(resize images or drop columns)")
    check_data_size(name, x.size, x.nbytes)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(1))[0])
        raise DatasetError(f"{name}{part}: X holds NaN or infinite values (first in row {bad}); "
                           f"fill or drop those rows")
    if len(class_names) > MAX_CLASSES:
        raise DatasetError(f"{name}{part}: {len(class_names):,} classes is over the {MAX_CLASSES} limit")
    if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
        raise DatasetError(f"{name}{part}: labels must lie in [0, {len(class_names)}), got [{y.min()}, {y.max()}]")
    if what:   # a test set may miss classes; the training part may not
        return
    counts = np.bincount(y, minlength=len(class_names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = class_names[present[0]] if len(present) else "none"
        raise DatasetError(f"{name}: every example has the same label ({only}); a data set needs at least 2 "
                           f"classes")
    thin = [class_names[i] for i in present if counts[i] < MIN_PER_CLASS]
    if thin:
        raise DatasetError(f"{name}: class(es) {', '.join(map(repr, thin[:5]))} have only 1 example; every class "
                           f"needs at least {MIN_PER_CLASS} (add examples or drop that class)")


def labels_to_ids(values) -> tuple[np.ndarray, list[str]]:
    """Any label values -> (int64 ids, class names). Integer labels keep their numbers as names, sorted by value."""
    values = np.asarray(values)
    if values.dtype.kind in "ui" or (values.dtype.kind == "f" and np.isfinite(values).all()
                                     and (values == np.round(values)).all()):
        values = values.astype(np.int64)
        names, ids = np.unique(values, return_inverse=True)
        return ids.astype(np.int64), [str(n) for n in names]
    text = np.asarray([str(v) for v in values])
    names, ids = np.unique(text, return_inverse=True)
    return ids.astype(np.int64), [str(n) for n in names]


def _images_layout(name: str, x: np.ndarray) -> np.ndarray:
    """(N, H, W) / (N, H, W, C) / (N, C, H, W) -> (N, C, H, W) with C in (1, 3), uint8 or float32 in [0, 1]."""
    if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[1] not in (1, 3):
        raise DatasetError(f"{name}: images need 1 or 3 channels, got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1):
        raise DatasetError(f"{name}: float images must lie in [0, 1] (got [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]); "
                           f"divide by 255 or save as uint8")
    return x


def _as_stored(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "uif":
        raise DatasetError(f"{name}: X must be numeric, got dtype {x.dtype}; save plain numbers")
    if x.ndim == 2:
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim in (3, 4):
        return _images_layout(name, x)
    raise DatasetError(f"{name}: X must be (N, F) vectors or (N, H, W) / (N, C, H, W) images, got shape {x.shape}")


# --- .npz ----------------------------------------------------------------------------------------

NPZ_WANTED = ("X", "y", "class_names", "X_test", "y_test")


def open_zip(data: bytes, name: str, kind: str, how: str, magics: tuple[bytes, ...] = (b"PK\x03\x04",)):
    """bytes -> an open zipfile.ZipFile, after the size cap and the zip signature; DatasetError saying `how` to make
    a `kind` file ("an .npz", "a .zip") otherwise."""
    check_file_size(name, len(data))
    if data[:4] not in magics:
        raise DatasetError(f"{name}: not {kind} file; {how}")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{name}: not a readable {kind.split()[-1]} file ({exc})") from exc


def parse_npz(data: bytes, source: str = "upload.npz") -> UserArrays:
    """An .npz with X, y, optional class_names (strings) and optional X_test / y_test. Pickles are refused."""
    name = source
    zf = open_zip(data, name, "an .npz", "save X and y with numpy.savez")
    with zf:
        members = npz_members_checked(zf, name, NPZ_WANTED)
        if ("X_test" in members) != ("y_test" in members):
            raise DatasetError(f"{name}: give both X_test and y_test, or neither")
        arrays = {}
        for key, info in members.items():
            try:
                with zf.open(info) as fp:
                    arrays[key] = np.lib.format.read_array(fp, allow_pickle=False)
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
                raise DatasetError(f"{name}: {key} could not be read ({exc}); is the file complete?") from exc
    x = _as_stored(name, arrays["X"])
    y_raw = arrays["y"]
    if y_raw.dtype.kind not in "ui":
        raise DatasetError(f"{name}: y must hold integer class labels, got dtype {y_raw.dtype}")
    if y_raw.ndim != 1 or len(y_raw) != len(x):
        raise DatasetError(f"{name}: need one label per row; got X {x.shape}, y {y_raw.shape}")
    y = y_raw.astype(np.int64)
    n_classes = int(y.max()) + 1 if len(y) else 0
    if len(y) and y.min() < 0:
        raise DatasetError(f"{name}: labels must be >= 0, got {y.min()}")
    names = [str(i) for i in range(n_classes)]
    if "class_names" in arrays:
        cn = arrays["class_names"]
        if cn.dtype.kind not in "USuif":
            raise DatasetError(f"{name}: class_names must be strings, got dtype {cn.dtype}")
        given = [str(s) for s in cn.ravel()]
        if not n_classes <= len(given) <= MAX_CLASSES:
            raise DatasetError(f"{name}: class_names has {len(given)} entries but labels go up to {n_classes - 1}")
        names = given
    check_arrays(name, x, y, names)
    out = UserArrays(x, y, names, source, {"kind": "npz"})
    if "X_test" in arrays:
        xt = _as_stored(name, arrays["X_test"])
        yt = arrays["y_test"]
        if yt.dtype.kind not in "ui":
            raise DatasetError(f"{name}: y_test must hold integer class labels, got dtype {yt.dtype}")
        yt = yt.astype(np.int64)
        if xt.shape[1:] != x.shape[1:]:
            raise DatasetError(f"{name}: X_test rows have shape {xt.shape[1:]} but X rows {x.shape[1:]}")
        check_arrays(name, xt, yt, names, what="test set")
        out.x_test, out.y_test = xt, yt
        out.how["test"] = "given (X_test, y_test)"
    return out


# --- .csv ----------------------------------------------------------------------------------------

def csv_preview(data: bytes, source: str = "upload.csv", rows: int = 5):
    """(column names, a small DataFrame of the first rows) for the label-column picker."""
    import pandas as pd

    check_file_size(source, len(data))
    try:
        return pd.read_csv(io.BytesIO(data), nrows=rows)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{source}: not a readable CSV file ({exc}); save it as comma-separated text with a "
                           f"header row") from exc


def parse_csv(data: bytes, label_column: str, source: str = "upload.csv") -> UserArrays:
    """A CSV with a header row: `label_column` holds the classes (any values), every other column a number."""
    import pandas as pd

    name = source
    check_file_size(name, len(data))
    try:
        table = pd.read_csv(io.BytesIO(data), nrows=MAX_ROWS + 1, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{name}: not a readable CSV file ({exc}); save it as comma-separated text with a "
                           f"header row") from exc
    if label_column not in table.columns:
        raise DatasetError(f"{name}: no column named {label_column!r}; columns are {list(table.columns)[:20]}")
    if len(table) > MAX_ROWS:
        raise DatasetError(f"{name}: more than {MAX_ROWS:,} rows; subsample it first")
    features = [c for c in table.columns if c != label_column]
    if not features:
        raise DatasetError(f"{name}: only the label column; a data set needs at least one feature column")
    if len(features) > MAX_FEATURES:
        raise DatasetError(f"{name}: {len(features):,} feature columns is over the {MAX_FEATURES:,} limit")
    labels = table[label_column].str.strip()
    if (labels == "").any():
        row = int(np.flatnonzero((labels == "").to_numpy())[0])
        raise DatasetError(f"{name}: the label column {label_column!r} is empty in row {row + 1}; fill or drop it")
    x = np.empty((len(table), len(features)), dtype=np.float32)
    for j, col in enumerate(features):
        values = pd.to_numeric(table[col].str.strip(), errors="coerce")
        text = table[col].str.strip()
        bad = values.isna() & ~text.str.lower().isin(["nan", "", "inf", "-inf"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(f"{name}: column {col!r} holds text ({text.iloc[row]!r} in row {row + 1}); feature "
                               f"columns must be numbers: pick that column as the label or drop it")
        x[:, j] = values.to_numpy(dtype=np.float64)
        if not np.isfinite(x[:, j]).all():
            row = int(np.flatnonzero(~np.isfinite(x[:, j]))[0])
            raise DatasetError(f"{name}: column {col!r} is empty, NaN or infinite in row {row + 1}; fill or drop "
                               f"those rows")
    y, names = labels_to_ids(labels.to_numpy())
    check_arrays(name, x, y, names)
    return UserArrays(x, y, names, source, {"kind": "csv", "label_column": label_column},
                      feature_names=[str(c) for c in features])


# --- IDX pair ------------------------------------------------------------------------------------

def _idx_array(data: bytes, name: str) -> np.ndarray:
    check_file_size(name, len(data))
    stream = gzip.GzipFile(fileobj=io.BytesIO(data)) if data[:2] == b"\x1f\x8b" else io.BytesIO(data)
    return _read_idx_stream(stream, name)


def parse_idx_pair(images: bytes, labels: bytes, source: str = "upload.idx") -> UserArrays:
    """An MNIST-format pair: images (N, H, W) uint8 and labels (N,) uint8, each gzipped or not."""
    x = _idx_array(images, f"{source} (images)")
    y_raw = _idx_array(labels, f"{source} (labels)")
    if x.ndim != 3 or y_raw.ndim != 1 or len(x) != len(y_raw):
        raise DatasetError(f"{source}: images {x.shape} and labels {y_raw.shape} do not match; give the images "
                           f"file (N, H, W) first and the labels file (N,) second")
    y = y_raw.astype(np.int64)
    names = [str(i) for i in range(int(y.max()) + 1)]
    x = np.ascontiguousarray(x[:, None])
    check_arrays(source, x, y, names)
    return UserArrays(x, y, names, source, {"kind": "idx pair"})


def parse_upload(data: bytes, source: str, *, label_column: str | None = None, colour: str = "grey",
                 size: int = 28) -> UserArrays:
    """One uploaded file by its magic bytes and suffix (the name is only a hint; the bytes decide)."""
    suffix = posixpath.splitext(source.lower())[1]
    if suffix == ".csv":
        if not label_column:
            raise DatasetError(f"{source}: choose the label column first")
        return parse_csv(data, label_column, source)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if suffix == ".npz":
            return parse_npz(data, source)
        from core.user_images import parse_image_zip

        return parse_image_zip(data, source, colour, size)
    raise DatasetError(f"{source}: not a .npz, .csv or .zip file; for an IDX pair upload both files together")
