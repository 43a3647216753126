"""2-D maps of latents: PCA (milliseconds), UMAP (umap-learn, seconds once warm), or the raw axes;
and a disk cache of maps keyed by (key, method, settings, the latents' bytes), stored as .npz.

umap-learn facts this module is built around (../shared/FIELD-NOTES.md):
- `import umap` is imported lazily, inside the functions that need it, never at app start-up;
- before numba is imported we point NUMBA_CACHE_DIR at a persistent, git-ignored folder
  (repo/.cache/numba) and pick numba's "omp" threading layer when it exists: the default
  "workqueue" layer can abort when two threads fit at once; one module-level lock serialises fits;
- every new process paid ~45 s of JIT on its first fit of >= 4,096 points, ~35 s of it compiling
  pynndescent's approximate-kNN kernels, which numba cannot cache (they take functions as
  arguments). Two changes remove almost all of it:
  1. up to EXACT_KNN_MAX points we compute the exact k nearest neighbours ourselves (torch cdist +
     topk, ~0.2 s for 5k points) and hand them to UMAP as precomputed_knn: pynndescent never runs;
  2. umap's and pynndescent's own numba functions are compiled with cache=True (a wrapper around
     numba.njit / numba.jit that touches only functions defined in those two packages), so
     their machine code lands in NUMBA_CACHE_DIR and later processes load it instead of compiling.
  Measured on the shared 2-core box, 5,000 x 16 latents, one thread: a fresh process from start to
  its first map 4.5-9 s once the disk cache exists (imports 2.5-5 s + fit ~2 s; it was ~47 s),
  ~26 s the very first time (empty cache: compiling into it); later fits 2-2.6 s.
- warm_umap() runs a quick fit (n_epochs=10) so a background thread can pay whatever is left
  early; umap_is_warm() says whether a fit has run in this process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NUMBA_CACHE_DIR = REPO / ".cache" / "numba"
DEFAULT_CACHE_DIR = REPO / ".cache" / "projections"
METHODS = ("pca", "umap", "raw")
UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "n_epochs": 150, "seed": 0}
WARM_POINTS = 4200  # >= 4,096 points: umap's own kNN would take the pynndescent path
EXACT_KNN_MAX = 20_000  # up to here we compute exact kNN (N^2 distances); above, pynndescent
MIN_UMAP_POINTS = 10  # below this a map is PCA (UMAP needs a neighbourhood graph)
CACHE_FORMAT = 1
CACHE_MAX_BYTES = 256 * 2**20  # the disk cache of maps is pruned to this total size ...
CACHE_MAX_AGE_S = 30 * 24 * 3600.0  # ... and of files not used for this long (a 60k-point map is ~0.5 MB)

_UMAP_LOCK = threading.Lock()
_WARM = threading.Event()

__all__ = ["project", "umap_embed", "project_cached", "projection_cache_path", "prune_cache", "warm_umap", "umap_is_warm", "pca_basis", "pca_2d", "exact_knn"]


def _omp_layer_available() -> bool:
    """Whether numba ships its OpenMP threading layer here, found without importing numba."""
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.submodule_search_locations:
        return False
    ufunc = Path(list(spec.submodule_search_locations)[0]) / "np" / "ufunc"
    return any(ufunc.glob("omppool*"))


def _configure_numba() -> None:
    """Environment for numba: must run before numba is first imported (the module does it)."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE_DIR))
    if "NUMBA_THREADING_LAYER" not in os.environ and _omp_layer_available():
        os.environ["NUMBA_THREADING_LAYER"] = "omp"


_configure_numba()
_NUMBA_PATCHED = False
_CACHED_PACKAGES = ("umap.", "pynndescent.")


def _cache_umap_kernels() -> None:
    """Make numba.njit / numba.jit default to cache=True for functions defined in umap or
    pynndescent (decorated at import and at fit time); every other function is untouched.
    Must run before `import umap`. Any failure leaves numba as it was (only slower)."""
    global _NUMBA_PATCHED
    if _NUMBA_PATCHED:
        return
    _NUMBA_PATCHED = True
    try:
        import numba
        from numba.core import sigutils
    except Exception:  # noqa: BLE001 - numba missing or changed: UMAP still works, uncached
        return

    def ours(fn) -> bool:
        return str(getattr(fn, "__module__", "")).startswith(_CACHED_PACKAGES)

    def caching(decorator):
        def wrapped(*args, **kwargs):
            if args and callable(args[0]) and not sigutils.is_signature(args[0]):  # @numba.njit bare
                if ours(args[0]):
                    kwargs.setdefault("cache", True)
                return decorator(*args, **kwargs)

            def decorate(fn):  # @numba.njit(signature?, **options)
                options = {**kwargs, "cache": kwargs.get("cache", True)} if ours(fn) else kwargs
                return decorator(*args, **options)(fn)

            return decorate

        wrapped.__wrapped__ = decorator
        return wrapped

    numba.njit = caching(numba.njit)
    numba.jit = caching(numba.jit)


# ----------------------------------------------------------------------------- projections

def _as_array(z, dtype=np.float32) -> np.ndarray:
    """Codes (N, d) as a finite numpy array (a torch tensor is accepted); ValueError saying what to do otherwise."""
    if hasattr(z, "detach"):  # a torch tensor
        z = z.detach().cpu().numpy()
    z = np.asarray(z, dtype=dtype)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"latents must be a non-empty (N, d) array, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("latents contain NaN or inf; re-encode with a model that trained without diverging")
    return z


def _pad2(z: np.ndarray) -> np.ndarray:
    return np.concatenate([z, np.zeros((len(z), 2 - z.shape[1]), np.float32)], 1) if z.shape[1] < 2 else z


def pca_basis(z) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) -> (mean (d,) float64, components (d, 2) float64): the map pca_2d draws is
    (z - mean) @ components, and mean + xy @ components.T maps a point back onto that plane
    (core.cartography). Components: the top two eigenvectors of the d x d covariance, signs fixed
    so each axis' largest loading is positive (stable maps); for d < 2 the padded identity."""
    z = _as_array(z).astype(np.float64)
    mean = z.mean(0)
    if z.shape[1] < 2:
        return mean, np.eye(z.shape[1], 2)
    zc = z - mean
    evals, evecs = np.linalg.eigh(zc.T @ zc)  # ascending
    top = evecs[:, ::-1][:, :2]  # (d, 2)
    top *= np.sign(top[np.abs(top).argmax(0), [0, 1]])
    return mean, top


def pca_2d(z) -> np.ndarray:
    """(N, d) -> (N, 2) float32: the top two principal components (eigh of the d x d covariance,
    ~1 ms for 10k x 16). Signs fixed so each axis' largest loading is positive (stable maps)."""
    z = _as_array(z).astype(np.float64)
    mean, top = pca_basis(z)
    zc = z - mean
    if z.shape[1] < 2:
        return _pad2(zc.astype(np.float32))
    return (zc @ top).astype(np.float32)


def exact_knn(z: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, k) int32, distances (N, k) float32) of each row's k nearest rows, itself
    included first (as umap's precomputed_knn expects). One cdist + topk per block of rows."""
    import torch

    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    idx = []
    for start in range(0, len(zt), block):
        d = torch.cdist(zt[start : start + block], zt)  # (b, N), fast matmul form: fine for ranking
        d[torch.arange(len(d)), torch.arange(start, start + len(d))] = -1.0  # itself first, even with duplicates
        idx.append(d.topk(k, dim=1, largest=False).indices)  # (b, k)
    nn = torch.cat(idx)  # (N, k)
    dist = (zt[nn] - zt[:, None]).norm(dim=-1)  # exact distances of the chosen pairs (self: 0)
    return nn.numpy().astype(np.int32), dist.numpy().astype(np.float32)


class _EpochReport:
    """A file for umap-learn's tqdm bar (its documented way to show progress) that turns each redraw, written in
    the bar_format "{n}/{total}", into report({"stage": "layout", "epoch": n, "epochs": total})."""

    def __init__(self, report):
        self.report = report

    def write(self, text: str) -> None:
        m = re.search(r"(\d+)/(\d+)\s*$", text.strip("\r\n "))
        if m:
            self.report({"stage": "layout", "epoch": int(m[1]), "epochs": int(m[2])})

    def flush(self) -> None:
        pass


def _umap_fit(z: np.ndarray, n_neighbors: int, min_dist: float, n_epochs: int, seed: int | None,
              n_components: int = 2, report=None) -> np.ndarray:
    """report: None, or called with {"stage": "neighbours"} once the fit starts, then {"stage": "layout",
    "epoch": n, "epochs": total} as the layout's epochs run (at most twice a second)."""
    with _UMAP_LOCK:
        numba = sys.modules.get("numba")
        if numba is not None and os.environ.get("NUMBA_THREADING_LAYER") == "omp":
            numba.config.THREADING_LAYER = "omp"  # numba imported before us: in time if nothing ran yet
        _cache_umap_kernels()
        import umap  # lazy: numba compiles (or loads from its cache) on first use

        k = min(n_neighbors, len(z) - 1)
        knn = exact_knn(z, k) + (None,) if len(z) <= EXACT_KNN_MAX else (None, None, None)
        progress = None if report is None else {"disable": False, "file": _EpochReport(report),
                                                "bar_format": "{n}/{total}", "mininterval": 0.5, "ascii": True}
        if report is not None:
            report({"stage": "neighbours", "points": len(z)})
        reducer = umap.UMAP(n_components=n_components, n_neighbors=k, min_dist=min_dist, n_epochs=n_epochs, init="pca",
                            random_state=seed, n_jobs=1 if seed is not None else -1, precomputed_knn=knn,
                            tqdm_kwds=progress)
        with warnings.catch_warnings():  # "no knn_search_index: transform unavailable" - we never transform
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            warnings.filterwarnings("ignore", message="Cannot cache compiled function")  # pynndescent, > 20k points
            xy = reducer.fit_transform(z)
    _WARM.set()
    return np.asarray(xy, dtype=np.float32)


def umap_embed(z, n_components: int, n_neighbors: int = 15, min_dist: float = 0.0, n_epochs: int = 200,
               seed: int = 0) -> np.ndarray:
    """Latents z (N, d) -> (N, n_components) UMAP embedding (for clustering / label propagation, not a map):
    the same fit as project()'s, seeded (single-threaded, repeatable), any number of components."""
    z = _as_array(z)
    if len(z) < MIN_UMAP_POINTS:
        raise ValueError(f"UMAP needs at least {MIN_UMAP_POINTS} points, got {len(z)}")
    return _umap_fit(z, int(n_neighbors), float(min_dist), int(n_epochs), int(seed) % 2**32, int(n_components))


def project(z, method: str = "pca", n_neighbors: int = 15, min_dist: float = 0.1, seed: int | None = 0,
            n_epochs: int = UMAP_DEFAULTS["n_epochs"], report=None) -> np.ndarray:
    """Latents z (N, d) (numpy or torch) -> (N, 2) float32 map.

    method "pca": top two principal components; "raw": the first two latent axes (for d = 2);
    "umap": umap-learn with init="pca" and n_epochs=150 (the fast settings of FIELD-NOTES).
    seed fixes UMAP's layout (umap then runs single-threaded); seed=None is faster, not repeatable.
    report: None or a function UMAP's progress goes to (_umap_fit). A set of fewer than 10 points is mapped with PCA whatever the method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {list(METHODS)}")
    z = _as_array(z)
    if method == "raw":
        return _pad2(z[:, :2]).copy()
    if method == "pca" or len(z) < MIN_UMAP_POINTS:
        return pca_2d(z)
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors}")
    if not 0 <= min_dist:
        raise ValueError(f"min_dist must be >= 0, got {min_dist}")
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    return _umap_fit(z, int(n_neighbors), float(min_dist), int(n_epochs), None if seed is None else int(seed),
                     report=report)


# ----------------------------------------------------------------------------- warm-up

def warm_umap(n_points: int = WARM_POINTS, d: int = 16) -> float:
    """Compile (or load from numba's disk cache) umap-learn's kernels in this process with a quick
    fit (n_epochs=10) on n_points random points, by the same code path project() takes for that
    many points; returns the seconds it took (0.0 if already warm). Safe to call from a background
    thread (fits are serialised by the module lock). Pass n_points > EXACT_KNN_MAX to also compile
    pynndescent for very large maps (~35 s, not cached)."""
    if _WARM.is_set():
        return 0.0
    t0 = time.perf_counter()
    z = np.random.default_rng(0).standard_normal((max(n_points, MIN_UMAP_POINTS), d)).astype(np.float32)
    # both code paths the app uses: seeded (single-threaded) and parallel
    for seed in (UMAP_DEFAULTS["seed"], None):
        _umap_fit(z, UMAP_DEFAULTS["n_neighbors"], UMAP_DEFAULTS["min_dist"], 10, seed)
    _WARM.set()
    return time.perf_counter() - t0


def umap_is_warm() -> bool:
    """True once this process has run a UMAP fit (later fits of up to EXACT_KNN_MAX points skip the JIT)."""
    return _WARM.is_set()


# ----------------------------------------------------------------------------- disk cache

def _settings(method: str, settings: dict) -> dict:
    unknown = set(settings) - set(UMAP_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown projection settings {sorted(unknown)}; use {sorted(UMAP_DEFAULTS)}")
    if method != "umap":
        return {}  # PCA and raw have no settings: changing UMAP's must not miss their cache
    return {**UMAP_DEFAULTS, **settings}


def projection_cache_path(z, key: str, method: str = "pca", cache_dir: str | Path | None = None,
                          **settings) -> Path:
    """Where project_cached keeps this map: the file name hashes key, method, the settings (with
    defaults filled in) and z's shape and bytes, so a new model, dataset or setting never hits a
    stale map. `key` (e.g. checkpoint sha + dataset id) only labels the file; it is never a path."""
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {list(METHODS)}")
    z = _as_array(z)
    ident = json.dumps({"format": CACHE_FORMAT, "key": str(key), "method": method,
                        "settings": _settings(method, settings), "shape": z.shape}, sort_keys=True)
    digest = hashlib.sha256(ident.encode() + np.ascontiguousarray(z).tobytes()).hexdigest()[:24]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(key)).strip(".-")[:40] or "z"
    return Path(cache_dir or DEFAULT_CACHE_DIR) / f"{slug}-{method}-{digest}.npz"


def project_cached(z, key: str, method: str = "pca", cache_dir: str | Path | None = None, report=None,
                   **settings) -> np.ndarray:
    """project(z, method, **settings), read from / written to an .npz file in cache_dir (default
    repo/.cache/projections). Plain arrays only (np.load(allow_pickle=False)); written atomically;
    an unreadable file is recomputed."""
    path = projection_cache_path(z, key, method, cache_dir, **settings)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                xy = f["xy"].astype(np.float32, copy=False)
            _touch(path)  # the age that prune_cache goes by is the time since last use
            return xy
        except (OSError, ValueError, KeyError):
            pass  # damaged or half-written by another process: recompute below
    xy = project(z, method, report=report, **_settings(method, settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(tmp, xy=xy, meta=np.array(json.dumps({"key": str(key), "method": method, **_settings(method, settings)})))
    os.replace(tmp, path)
    prune_cache(path.parent, keep=path)
    return xy


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # read-only cache folder: ages then count from the write


def prune_cache(cache_dir: str | Path | None = None, max_bytes: int | None = None, max_age_s: float | None = None,
                keep: Path | None = None, now: float | None = None) -> list[Path]:
    """Delete cached maps (*.npz in cache_dir) not used for max_age_s (default CACHE_MAX_AGE_S), then the
    least recently used ones until the rest fit in max_bytes (default CACHE_MAX_BYTES). `keep` (the map
    just written) is never deleted; another writer's temporary file is left alone unless it is over an
    hour old (a crashed writer's). -> the paths deleted. project_cached calls it after every write
    (one listing and one stat per cached map; reads never prune)."""
    folder = Path(cache_dir or DEFAULT_CACHE_DIR)
    now = time.time() if now is None else now
    max_bytes = CACHE_MAX_BYTES if max_bytes is None else max_bytes
    max_age_s = CACHE_MAX_AGE_S if max_age_s is None else max_age_s
    files = []
    for p in folder.glob("*.npz") if folder.is_dir() else []:
        try:
            s = p.stat()
        except OSError:
            continue  # deleted meanwhile by another process
        files.append((s.st_mtime, s.st_size, p))
    files.sort(key=lambda f: f[0], reverse=True)  # most recently used first
    deleted, total, full = [], 0, False
    for mtime, size, p in files:
        stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp.npz") and now - mtime > 3600
        if p.name.startswith(".") and not stale_tmp:
            continue  # another writer's file in progress
        full = full or (p != keep and total + size > max_bytes)  # from here on, everything older goes
        if p != keep and (stale_tmp or full or now - mtime > max_age_s):
            try:
                p.unlink()
                deleted.append(p)
            except OSError:
                pass
            continue
        total += size
    return deleted


# ----------------------------------------------------------------------------- executor job

def umap_projection(z, key: str, cache_dir: str | None = None, n_neighbors: int = UMAP_DEFAULTS["n_neighbors"],
                    min_dist: float = UMAP_DEFAULTS["min_dist"], report=None) -> dict:
    """The UMAP of latents z (N, d) as an executor job (a worker process, never the web server):
    project_cached(z, key, "umap", cache_dir, ...) -> {"xy": (N, 2) float32, "seconds": float}.
    (Named settings, not **settings: the executor hands report= / stop= to a function taking **kwargs.)
    report: the executor's progress callback (stages and epochs, _umap_fit), so the page can say how far it is."""
    t0 = time.perf_counter()
    xy = project_cached(z, key, "umap", cache_dir, report=report, n_neighbors=n_neighbors, min_dist=min_dist)
    return {"xy": np.asarray(xy, dtype=np.float32), "seconds": time.perf_counter() - t0}
