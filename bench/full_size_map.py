"""A full-size data set stays interactive (issue 15): 60,000 images uploaded, encoded by a z = 16 model, mapped
with PCA at once, neighbour lookups on the codes, the hole metric's neighbour pass, and the UMAP the app runs in
the background — each timed as the app's code paths run them.

The 60,000 images: the 10,000 real MNIST test images (../shared/data/mnist-test) and five copies shifted by one
pixel (right, left, down, up, diagonal; zero fill) — a stand-in for a user's own 60k MNIST / Fashion-MNIST files,
which cannot be downloaded here. Said in every figure's line.

Timed (one process, torch and numba at one thread unless --threads; the app's UMAP job is seeded, so umap-learn
runs single-threaded):
- upload: core.user_data.parse_npz + core.data_store.store of a compressed .npz (the browser path minus HTTP);
- encode: core.latent.encode_dataset with the shipped z = 16 uniform-prior AAE;
- pca: core.projection.project(method="pca");
- lookup: core.neighbours.nearest of one code against the 60k (what a click on the map asks), p50 / p90 of 200;
- holes: core.holes.hole_threshold (the N x N self pass: above 20k rows a pynndescent index; its JIT is paid
  by the UMAP fit before it unless --skip-umap);
- umap: core.projection.project(method="umap", seed=0) on the 60k codes, the first >20k fit in this process
  (pynndescent's JIT included: a fresh worker pays it), before the hole pass.
Reference, same run: the same steps' exact counterparts on the 10,000 real images alone (10k: exact kNN, UMAP
with exact neighbours), so a ratio says what the size costs on whatever machine this runs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/full_size_map.py [--skip-umap]

Goals (issue 15, 2 cores): lookups <= 50 ms each, UMAP ready <= 3 minutes, the page responsive meanwhile (the
UMAP is a worker job: tests/test_server_runs_no_heavy_jobs.py). Last line is machine-readable.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import data_store, holes, neighbours, user_data  # noqa: E402
from core.checkpoints import load_checkpoint  # noqa: E402
from core.data import _read_idx  # noqa: E402
from core.latent import encode_dataset  # noqa: E402
from core.projection import project  # noqa: E402

MNIST_TEST = ROOT.parent / "shared" / "data" / "mnist-test"
CHECKPOINT = ROOT / "checkpoints" / "mnist5k-aae-uniform-z16"
SHIFTS = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1)]


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, H, W) uint8 moved by (dy, dx) pixels, zeros where nothing moved in."""
    out = np.zeros_like(x)
    h, w = x.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def lookups(z: torch.Tensor, n: int = 200) -> tuple[float, float]:
    """p50, p90 ms of one code's 5 nearest among z, for n codes of z (each excluded from its own answer)."""
    rows = torch.randperm(len(z), generator=torch.Generator().manual_seed(0))[:n]
    ms = []
    for r in rows:
        t = time.perf_counter()
        neighbours.nearest(z, z[r:r + 1], k=5, self_rows=r.reshape(1))
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    return statistics.median(ms), ms[int(0.9 * len(ms))]


def steps(x: np.ndarray, y: np.ndarray, model, runs: Path, skip_umap: bool) -> dict:
    out = {}
    buf = io.BytesIO()
    np.savez_compressed(buf, X=x, y=y.astype(np.int64))
    out["file_mb"] = len(buf.getvalue()) / 2**20
    (arrays, out["upload_s"]) = timed(lambda: user_data.parse_npz(buf.getvalue(), "full.npz"))
    _, t = timed(lambda: data_store.store(arrays, "full", owners=["bench"], root=runs))
    out["upload_s"] += t
    z, out["encode_s"] = timed(lambda: encode_dataset(model, torch.from_numpy(x[:, None].astype(np.float32) / 255)))
    _, out["pca_s"] = timed(lambda: project(z.numpy(), "pca"))
    out["lookup_p50_ms"], out["lookup_p90_ms"] = lookups(z)
    if not skip_umap:   # before the hole pass: the first >20k fit pays pynndescent's JIT, as a fresh worker's does
        _, out["umap_s"] = timed(lambda: project(z.numpy(), "umap", seed=0))
    _, out["holes_s"] = timed(lambda: holes.hole_threshold(z))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-umap", action="store_true", help="no UMAP fits (the rest takes about a minute)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not (MNIST_TEST / "t10k-images-idx3-ubyte.gz").is_file():
        print(f"full_size_map skipped: no MNIST test set under {MNIST_TEST}")
        return
    x10 = _read_idx(MNIST_TEST / "t10k-images-idx3-ubyte.gz")
    y10 = _read_idx(MNIST_TEST / "t10k-labels-idx1-ubyte.gz")
    x60 = np.concatenate([x10] + [shifted(x10, dy, dx) for dy, dx in SHIFTS])
    y60 = np.tile(y10, 1 + len(SHIFTS))
    model = load_checkpoint(CHECKPOINT, device="cpu").model
    with tempfile.TemporaryDirectory() as tmp:
        ref = steps(x10, y10, model, Path(tmp) / "ref", args.skip_umap)       # first: numba's cached kernels load
        big = steps(x60, y60, model, Path(tmp) / "big", args.skip_umap)
    print(f"machine: torch {args.threads} thread(s); images: 10,000 real MNIST test images, and x 6 with 5 "
          f"one-pixel shifts (60,000); model {CHECKPOINT.name}")
    for k in big:
        print(f"  {k:14s} 10k {ref[k]:9.3f}   60k {big[k]:9.3f}   ratio {big[k] / max(ref[k], 1e-9):6.1f}")
    umap = f"umap_s={big['umap_s']:.0f} umap_10k_s={ref['umap_s']:.0f} " if "umap_s" in big else ""
    print(f"full_size_map n=60000 upload_s={big['upload_s']:.2f} file_mb={big['file_mb']:.1f} "
          f"encode_s={big['encode_s']:.2f} pca_s={big['pca_s']:.2f} lookup_p50_ms={big['lookup_p50_ms']:.1f} "
          f"lookup_p90_ms={big['lookup_p90_ms']:.1f} holes_s={big['holes_s']:.1f} {umap}"
          f"lookup_10k_p50_ms={ref['lookup_p50_ms']:.1f}")


if __name__ == "__main__":
    main()
