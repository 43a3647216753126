"""Map point -> latent code on a UMAP map: core.cartography's barycentric (Delaunay) inverse against
umap-learn's own `inverse_transform`, on a few points (time and distance).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/umap_inverse.py [--points 20]

Latents: the shipped mnist5k-aae-uniform-z16 codes of mnist5k (bench/app_latency.py latents_5k;
random 5,000 x 16 codes when the checkpoint is missing). UMAP is fitted exactly as
core.projection fits it (same settings, exact kNN handed over as precomputed_knn, umap's numba
kernels cached), but the reducer is kept so its inverse_transform can be called.
Probe points: `--points` midpoints between a data point and one of its map neighbours (inside the
hull) and as many uniform points of the map's bounding box (some outside the hull).
Distances are in units of the typical neighbour distance of the codes (core.holes.typical_nn_distance,
the unit of hole depth): 1 = one typical gap between neighbouring codes.
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def fit_umap(z: np.ndarray):
    """(reducer, xy (N, 2)) fitted like core.projection.project(z, "umap") (seed 0)."""
    from core import projection as P

    with P._UMAP_LOCK:
        P._cache_umap_kernels()
        import umap

        s = P.UMAP_DEFAULTS
        k = min(s["n_neighbors"], len(z) - 1)
        reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=s["min_dist"], n_epochs=s["n_epochs"], init="pca",
                            random_state=s["seed"], n_jobs=1, precomputed_knn=P.exact_knn(z, k) + (None,))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            xy = reducer.fit_transform(z)
    return reducer, np.asarray(xy, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20, help="probe points of each kind (inside / box)")
    args = ap.parse_args()

    from app_latency import latents_5k

    from core.cartography import DelaunayInverse, codes_from_spec
    from core.holes import hole_depth_of, typical_nn_distance

    what, z = latents_5k()
    z = np.asarray(z, np.float32)
    print(f"codes: {what}, {z.shape}")
    t0 = time.perf_counter()
    reducer, xy = fit_umap(z)
    print(f"umap fit: {time.perf_counter() - t0:.1f} s (incl. import / numba cache load)")

    rng = np.random.default_rng(0)
    n = args.points
    i = rng.choice(len(z), n, replace=False)
    j = np.array([np.argsort(((xy - xy[k]) ** 2).sum(1))[rng.integers(1, 6)] for k in i])  # a close map neighbour
    lo, hi = xy.min(0), xy.max(0)
    pts = np.r_[(xy[i] + xy[j]) / 2, rng.uniform(lo, hi, (n, 2))].astype(np.float32)  # (2n, 2)

    t0 = time.perf_counter()
    inv = DelaunayInverse(z, xy)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    inv.codes(pts[:1])  # the first call also builds scipy's barycentric transforms of every triangle
    first_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    ours, inside = inv.codes(pts)
    ours_ms = (time.perf_counter() - t0) * 1e3
    spec = inv.to_browser()
    text = json.dumps(spec)
    t0 = time.perf_counter()
    ref, _ = codes_from_spec(json.loads(text), pts)
    ref_ms = (time.perf_counter() - t0) * 1e3 / len(pts)
    assert np.allclose(ref[inside], ours[inside], atol=1e-6), "the browser reference disagrees with codes()"

    times = []
    for _ in range(2):  # the first call compiles umap's inverse kernels (numba)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.asarray(reducer.inverse_transform(pts), np.float64)  # (2n, d)
        times.append(time.perf_counter() - t0)

    unit = typical_nn_distance(z)
    dist = np.linalg.norm(theirs - np.nan_to_num(ours), axis=1) / unit  # (2n,)
    depth_theirs = hole_depth_of(theirs, z, unit)
    depth_ours = np.full(len(pts), np.nan)
    depth_ours[inside] = hole_depth_of(ours[inside], z, unit)
    mid, box = slice(0, n), slice(n, 2 * n)
    # where an answer lands on the map: the map position of its nearest data code, against the probe
    # point, in units of the map's own typical neighbour gap (a crude re-embedding: umap has no transform here)
    map_unit = typical_nn_distance(xy)
    nearest = lambda c: np.argmin(((c[:, None, :] - z[None]) ** 2).sum(-1), 1)  # noqa: E731  (M,)
    miss_theirs = np.linalg.norm(xy[nearest(theirs)] - pts, axis=1) / map_unit
    miss_ours = np.full(len(pts), np.nan)
    miss_ours[inside] = np.linalg.norm(xy[nearest(ours[inside])] - pts[inside], axis=1) / map_unit
    print(f"delaunay: build {build_s * 1e3:.0f} ms ({len(inv.tri.simplices)} triangles), first codes() call "
          f"{first_ms:.1f} ms, then {ours_ms:.2f} ms for {len(pts)} points, python browser reference "
          f"{ref_ms:.2f} ms/point, spec {len(text) / 1e6:.2f} MB JSON")
    print(f"umap inverse_transform: first call {times[0]:.2f} s, second {times[1]:.2f} s for {len(pts)} points "
          f"({times[1] / len(pts) * 1e3:.0f} ms/point)")
    print(f"probe points: {n} midpoints of map neighbours (all inside: {bool(inside[mid].all())}), "
          f"{n} box points ({int(inside[box].sum())} inside the hull, {int((~inside[box]).sum())} outside)")
    for name, sel in (("midpoints", np.flatnonzero(inside[mid])),
                      ("box, inside", n + np.flatnonzero(inside[box]))):
        if len(sel):
            print(f"  {name}: |umap - barycentric| median {np.median(dist[sel]):.2f}, max {dist[sel].max():.2f} "
                  f"(typical gaps); hole depth barycentric median {np.median(depth_ours[sel]):.2f}, "
                  f"umap {np.median(depth_theirs[sel]):.2f}; nearest code's map position from the probe "
                  f"(map gaps): barycentric median {np.median(miss_ours[sel]):.1f}, "
                  f"umap {np.median(miss_theirs[sel]):.1f}")
    out = n + np.flatnonzero(~inside[box])
    if len(out):
        print(f"  box, outside the hull: barycentric says 'outside'; umap returns codes of hole depth median "
              f"{np.median(depth_theirs[out]):.2f} (max {depth_theirs[out].max():.2f}), with no flag, whose nearest "
              f"codes sit {np.median(miss_theirs[out]):.0f} map gaps (median) from the probe point")
    sel = np.flatnonzero(inside)
    print("umap_inverse " + json.dumps({
        "n_codes": len(z), "points": len(pts), "inside": int(inside.sum()),
        "delaunay_build_ms": round(build_s * 1e3, 1), "barycentric_first_ms": round(first_ms, 1),
        "barycentric_ms": round(ours_ms, 3), "reference_ms_per_point": round(ref_ms, 3),
        "spec_mb": round(len(text) / 1e6, 3), "umap_first_s": round(times[0], 2), "umap_second_s": round(times[1], 2),
        "dist_median": round(float(np.median(dist[sel])), 3), "dist_max": round(float(dist[sel].max()), 3),
        "depth_bary_median": round(float(np.median(depth_ours[sel])), 3),
        "depth_umap_median": round(float(np.median(depth_theirs[sel])), 3),
        "map_miss_bary_median": round(float(np.median(miss_ours[sel])), 2),
        "map_miss_umap_median": round(float(np.median(miss_theirs[sel])), 2),
        "map_miss_umap_outside_median": round(float(np.median(miss_theirs[out])), 1) if len(out) else None}))


if __name__ == "__main__":
    main()
