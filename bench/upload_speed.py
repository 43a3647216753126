"""Seconds from an uploaded file to a stored, listed data set with its first page read: the 10,000-image MNIST
test set (../shared/data/mnist-test) as an .npz and as a zip of 10,000 PNGs in class folders.

Timed: core.user_data's parse + validation, core.data_store.store (hash, carved split, npz + manifest written),
list_manifests, and the first page the Your data page draws (load_arrays + the first 16 images). The reference,
same run, same bytes: the least any reader must do (np.load of the .npz; PIL decoding the 10,000 PNGs).
Goals (issue 15): npz <= 10 s, zip of PNGs <= 30 s on 2 cores. Building the files is not timed.

    .venv/bin/python bench/upload_speed.py [--repeat 3]

Last line: upload_speed npz=<s> (x<ratio> of np.load) zip=<s> (x<ratio> of PNG decode)
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import data_store, user_data, user_images  # noqa: E402
from core.data import _read_idx  # noqa: E402

MNIST_TEST = ROOT.parent / "shared" / "data" / "mnist-test"


def mnist_test() -> tuple[np.ndarray, np.ndarray] | None:
    images = MNIST_TEST / "t10k-images-idx3-ubyte.gz"
    labels = MNIST_TEST / "t10k-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        return None
    return _read_idx(images), _read_idx(labels)


def as_npz(x, y) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=x, y=y.astype(np.int64))
    return buf.getvalue()


def as_png_zip(x, y) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:   # PNGs are compressed already
        for i, (img, label) in enumerate(zip(x, y)):
            png = io.BytesIO()
            Image.fromarray(img).save(png, format="PNG")
            zf.writestr(f"mnist-test/{label}/{i:05d}.png", png.getvalue())
    return buf.getvalue()


def upload(parse, runs: Path) -> float:
    t = time.perf_counter()
    arrays = parse()
    manifest = data_store.store(arrays, "mnist-test", owners=["bench"], root=runs)
    listed = [m for m in data_store.list_manifests(runs) if m["sha256"] == manifest["sha256"]]
    x, y, names = data_store.load_arrays(manifest["sha256"], train=True, root=runs)
    first = (x[:16].astype(np.float32) / 255.0, [names[c] for c in y[:16]])   # the page's first 16 images
    seconds = time.perf_counter() - t
    assert listed and first[0].shape == (16, 1, 28, 28)
    data_store.delete(manifest["sha256"], {"bench"}, root=runs)            # the next repeat stores it anew
    return seconds


def reference_npz(raw: bytes) -> float:
    t = time.perf_counter()
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        f["X"], f["y"]
    return time.perf_counter() - t


def reference_png(raw: bytes) -> float:
    from PIL import Image

    t = time.perf_counter()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            np.asarray(Image.open(io.BytesIO(zf.read(info))).convert("L"))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = mnist_test()
    if data is None:
        print(f"upload_speed skipped: no MNIST test set under {MNIST_TEST}")
        return
    x, y = data
    npz, pngs = as_npz(x, y), as_png_zip(x, y)
    print(f"files: npz {len(npz) / 2**20:.1f} MB, zip of {len(x):,} PNGs {len(pngs) / 2**20:.1f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        times = {"npz": [], "zip": [], "ref_npz": [], "ref_png": []}
        for _ in range(args.repeat):   # alternate, so machine noise hits all alike
            times["ref_npz"].append(reference_npz(npz))
            times["npz"].append(upload(lambda: user_data.parse_npz(npz, "mnist-test.npz"), runs))
            times["ref_png"].append(reference_png(pngs))
            times["zip"].append(upload(lambda: user_images.parse_image_zip(pngs, "mnist-test.zip", "grey", 28), runs))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:8s} median {med[k]:.3f} s  ({', '.join(f'{s:.3f}' for s in v)})")
    print(f"upload_speed npz={med['npz']:.2f}s (x{med['npz'] / med['ref_npz']:.1f} of np.load) "
          f"zip={med['zip']:.2f}s (x{med['zip'] / med['ref_png']:.2f} of PNG decode)")


if __name__ == "__main__":
    main()
