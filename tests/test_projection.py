"""core.projection: PCA / raw / UMAP maps and their disk cache."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import core.projection as P
from core.projection import pca_2d, project, project_cached, projection_cache_path


def _blobs(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = 6 * rng.standard_normal((3, d))
    y = rng.integers(3, size=n)
    return (centres[y] + rng.standard_normal((n, d))).astype(np.float32), y


def test_importing_projection_leaves_umap_and_numba_unimported_and_sets_numba_env():
    code = ("import os, sys; import core.projection as P; "
            "assert 'umap' not in sys.modules and 'numba' not in sys.modules, 'heavy import at start-up'; "
            "print(os.environ['NUMBA_CACHE_DIR']); print(os.environ.get('NUMBA_THREADING_LAYER'))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("NUMBA_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=P.REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    cache_dir, layer = out.stdout.split()
    assert cache_dir == str(P.NUMBA_CACHE_DIR)
    assert layer == ("omp" if P._omp_layer_available() else "None")


def test_pca_is_deterministic_and_matches_the_top_components():
    z, _ = _blobs(10_000)
    xy = project(z, "pca")
    assert xy.shape == (10_000, 2) and xy.dtype == np.float32
    assert np.array_equal(xy, project(torch.from_numpy(z), "pca"))
    zc = z - z.mean(0)
    s = np.linalg.svd(zc, compute_uv=False)
    assert np.allclose(xy.var(0) * len(z), s[:2] ** 2, rtol=1e-3)  # the two largest variances


def test_raw_axes_and_one_dimensional_latents():
    z = np.arange(10, dtype=np.float32).reshape(5, 2)
    assert np.array_equal(project(z, "raw"), z)
    one = project(z[:, :1], "raw")
    assert one.shape == (5, 2) and (one[:, 1] == 0).all()
    assert pca_2d(z[:, :1]).shape == (5, 2)


@pytest.mark.parametrize("z, message", [
    (np.zeros((0, 4)), "non-empty"),
    (np.zeros(4), "non-empty"),
    (np.array([[np.nan, 1.0]]), "NaN"),
])
def test_bad_latents_are_value_errors(z, message):
    with pytest.raises(ValueError, match=message):
        project(z, "pca")


def test_unknown_method_or_setting_is_a_value_error(tmp_path):
    z, _ = _blobs(50)
    with pytest.raises(ValueError, match="unknown projection"):
        project(z, "tsne")
    with pytest.raises(ValueError, match="unknown projection settings"):
        project_cached(z, "k", "umap", tmp_path, perplexity=30)


def test_cache_hit_returns_the_identical_array_without_recomputing(tmp_path, monkeypatch):
    z, _ = _blobs(300)
    first = project_cached(z, "ckpt-abc/digits", "pca", tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and files[0].parent == tmp_path  # key is not a path
    with np.load(files[0], allow_pickle=False) as f:  # plain arrays, never pickle
        assert np.array_equal(f["xy"], first)

    def boom(*a, **k):
        raise AssertionError("cache miss: recomputed")

    monkeypatch.setattr(P, "project", boom)
    again = project_cached(z, "ckpt-abc/digits", "pca", tmp_path)
    assert np.array_equal(again, first) and again.dtype == np.float32
    # settings that PCA does not use, and spelled-out defaults, still hit
    assert np.array_equal(project_cached(z, "ckpt-abc/digits", "pca", tmp_path, n_neighbors=50), first)
    assert projection_cache_path(z, "k", "umap", tmp_path) == \
        projection_cache_path(z, "k", "umap", tmp_path, **P.UMAP_DEFAULTS)


def test_a_different_setting_key_method_or_latent_misses(tmp_path):
    z, _ = _blobs(300)
    paths = {
        projection_cache_path(z, "a", "umap", tmp_path),
        projection_cache_path(z, "a", "umap", tmp_path, n_neighbors=30),
        projection_cache_path(z, "a", "umap", tmp_path, min_dist=0.5),
        projection_cache_path(z, "b", "umap", tmp_path),
        projection_cache_path(z, "a", "pca", tmp_path),
        projection_cache_path(z + 1e-3, "a", "umap", tmp_path),
        projection_cache_path(z[:-1], "a", "umap", tmp_path),
    }
    assert len(paths) == 7
    project_cached(z, "a", "pca", tmp_path)
    project_cached(z[::-1].copy(), "a", "pca", tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_a_damaged_cache_file_is_recomputed(tmp_path):
    z, _ = _blobs(100)
    path = projection_cache_path(z, "k", "pca", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an npz file")
    assert np.array_equal(project_cached(z, "k", "pca", tmp_path), project(z, "pca"))


def test_exact_knn_lists_itself_first_then_the_nearest():
    z, _ = _blobs(500)
    idx, dist = P.exact_knn(z, 6, block=128)
    assert idx.shape == dist.shape == (500, 6) and idx.dtype == np.int32 and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(500)).all() and np.allclose(dist[:, 0], 0, atol=1e-3)
    full = np.linalg.norm(z[:, None] - z[None], axis=-1)
    assert np.allclose(dist, np.sort(full, axis=1)[:, :6], atol=1e-3)


def test_numba_caching_is_switched_on_only_for_umap_and_pynndescent_functions():
    numba = pytest.importorskip("numba")
    P._cache_umap_kernels()

    def add(a, b):
        return a + b

    def ours(a, b):
        return a + b

    ours.__module__ = "umap.layouts"  # as if defined inside umap
    plain, cached = numba.njit(add), numba.njit(fastmath=True)(ours)
    assert plain(1, 2) == 3 and cached(1, 2) == 3
    assert type(plain._cache).__name__ == "NullCache"  # other code is untouched
    assert type(cached._cache).__name__ != "NullCache"


@pytest.mark.slow
def test_umap_map_separates_clusters_and_is_cached(tmp_path, monkeypatch):
    """One small UMAP fit (pays umap's JIT, ~45 s the first time in a process)."""
    z, y = _blobs(400)
    xy = project_cached(z, "blobs", "umap", tmp_path, n_epochs=60)
    assert xy.shape == (400, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert (y[d.argmin(1)] == y).mean() > 0.95  # each point's nearest map neighbour is of its cluster
    with monkeypatch.context() as m:  # the second call must read the file, not fit again
        m.setattr(P, "project", lambda *a, **k: pytest.fail("project_cached refitted a cached map"))
        assert np.array_equal(project_cached(z, "blobs", "umap", tmp_path, n_epochs=60), xy)
    assert project(z[:5], "umap").shape == (5, 2)  # too few points for UMAP: PCA
    assert isinstance(P.umap_is_warm(), bool)


def test_umap_job_reports_its_stage_and_epochs_and_maps_as_without_reports(tmp_path):
    """The Latent map page says how far a background UMAP is (a 60k fit takes minutes): the job reports the
    neighbour stage, then layout epochs up to the last; reporting changes nothing in the map."""
    from ui.maps import umap_stage

    z, _ = _blobs(400)
    events = []
    got = P.umap_projection(z, "blobs", str(tmp_path / "a"), n_neighbors=15, min_dist=0.1, report=events.append)
    plain = P.umap_projection(z, "blobs", str(tmp_path / "b"), n_neighbors=15, min_dist=0.1)
    assert np.array_equal(got["xy"], plain["xy"])
    assert events[0] == {"stage": "neighbours", "points": 400}
    layout = [e for e in events[1:] if e["stage"] == "layout"]
    assert layout and layout[-1]["epoch"] == layout[-1]["epochs"] == P.UMAP_DEFAULTS["n_epochs"]
    assert [e["epoch"] for e in layout] == sorted(e["epoch"] for e in layout)
    assert umap_stage(events[0]) == ", building the neighbour graph of 400 codes"
    assert umap_stage(layout[-1]) == ", layout epoch 150 of 150" and umap_stage({}) == ""
