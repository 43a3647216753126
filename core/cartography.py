"""From a point on the 2-D latent map back to a latent code: one inverse per projection kind.

The Latent map draws codes z (N, d) at map positions xy (N, 2). To probe the space *between* the
codes (decode what lies under the pointer, draw a decoded manifold over the map's window) we need
the opposite direction, map point -> code:

- raw axes (d = 2): the map is the code; exact.
- PCA: the map is (z - mean) @ components (core.projection.pca_basis); a map point goes back to
  mean + xy @ components.T, the point of the 2-D plane through the code mean spanned by the two
  principal components. Exact on that plane; a code off it comes back as its orthogonal projection
  onto it (the d - 2 other directions are not on the map).
- UMAP (any 2-D embedding): the codes at the three vertices of the Delaunay triangle (of the map
  positions) that holds the point, mixed with the point's barycentric weights. It passes exactly
  through every data code and is linear inside each triangle. Beyond the convex hull of the map
  there is no triangle: the point is reported *outside* (inside = False, its code all NaN), never
  extrapolated. (umap-learn's own inverse_transform also starts from a Delaunay triangle, then
  optimises a point against UMAP's fuzzy graph: slower, not reproducible in a browser, and it maps
  a point outside the hull to the last triangle's neighbourhood silently; bench/umap_inverse.py.)

Every inverse has `codes(points (M, 2)) -> (codes (M, d) float64, inside (M,) bool)` and
`to_browser() -> dict`, a small JSON-able description from which the browser computes the same
thing; `codes_from_spec(spec, points)` is the pure numpy reference of that browser computation
(the Delaunay walk a browser does, with no scipy), tested equal to `codes()`.
Plus the tiles of a decoded manifold: `grid_points` over a map window and their hole depths
(core.holes.hole_depth_of, the one definition of hole depth).
"""

from __future__ import annotations

import numpy as np

from core.holes import hole_depth_of
from core.projection import MIN_UMAP_POINTS, pca_basis

__all__ = ["RawInverse", "PcaInverse", "DelaunayInverse", "map_inverse", "codes_from_spec", "grid_points",
           "grid_hole_depth", "nearest_code", "SPEC_FORMAT"]

SPEC_FORMAT = 1  # bump when the browser spec changes shape
# a barycentric weight >= -INSIDE_TOL counts as inside (a point on an edge): scipy's find_simplex tolerance
INSIDE_TOL = 100 * float(np.finfo(np.float64).eps)


def _points(points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1 and p.shape == (2,):
        p = p[None]
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"map points must be an (M, 2) array of (x, y), got shape {p.shape}")
    return p


def _codes(z, name: str = "codes") -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) array, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contain NaN or inf; re-encode with a model that trained without diverging")
    return z


def _f32_list(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float32).tolist()  # python floats holding float32 values: exact in JSON


# ----------------------------------------------------------------------------- raw axes

class RawInverse:
    """d = 2: the map point is the code."""

    kind = "raw"

    def __init__(self, dim: int = 2):
        if dim != 2:
            raise ValueError(f"raw axes can be inverted only for 2-D codes (these have {dim}); use PCA or UMAP")
        self.dim = 2

    def codes(self, points) -> tuple[np.ndarray, np.ndarray]:
        p = _points(points)  # (M, 2)
        return p.copy(), np.ones(len(p), bool)

    def to_browser(self) -> dict:
        return {"format": SPEC_FORMAT, "kind": "raw", "dim": 2}


# ----------------------------------------------------------------------------- PCA

class PcaInverse:
    """The plane through the code mean spanned by pca_2d's two components (exact on the plane)."""

    kind = "pca"

    def __init__(self, z):
        z = _codes(z)
        self.mean, components = pca_basis(z)  # (d,), (d, 2): the very basis pca_2d maps with
        self.components = components.T.copy()  # (2, d)
        self.dim = z.shape[1]

    def codes(self, points) -> tuple[np.ndarray, np.ndarray]:
        p = _points(points)  # (M, 2)
        return self.mean + p @ self.components, np.ones(len(p), bool)  # (M, d)

    def to_browser(self) -> dict:
        # float64 (d * 3 numbers): the browser's code equals ours to the last bit of a double
        return {"format": SPEC_FORMAT, "kind": "pca", "dim": self.dim, "mean": self.mean.tolist(),
                "components": self.components.tolist()}


# ----------------------------------------------------------------------------- Delaunay (UMAP)

class DelaunayInverse:
    """Barycentric interpolation of the codes over the Delaunay triangulation of their map positions.

    Codes that share one map position: qhull keeps one of them as a vertex (the others are never
    interpolated). The positions and codes are kept as float32 (what the app's maps and latents are, and what the
    browser receives), so `codes()` and the browser work from the very same numbers."""

    kind = "delaunay"

    def __init__(self, z, xy):
        from scipy.spatial import Delaunay, QhullError

        z, xy = _codes(z), _codes(xy, "map positions")
        if xy.shape[1] != 2 or len(xy) != len(z):
            raise ValueError(f"map positions must be (N, 2) for the N = {len(z)} codes, got shape {xy.shape}")
        if len(z) < 3:
            raise ValueError(f"a Delaunay inverse needs at least 3 mapped codes, got {len(z)}; map more points")
        self.z = z.astype(np.float32)  # (N, d)
        self.xy = xy.astype(np.float32)  # (N, 2)
        try:
            self.tri = Delaunay(self.xy.astype(np.float64))
        except QhullError as e:
            raise ValueError("the map positions are all on one line (or one point): no triangle to interpolate "
                             f"in; use the PCA map instead ({str(e).splitlines()[0]})") from None
        self.dim = z.shape[1]

    def codes(self, points) -> tuple[np.ndarray, np.ndarray]:
        p = _points(points)  # (M, 2)
        s = self.tri.find_simplex(p)  # (M,), -1 outside the hull
        inside = s >= 0
        t = self.tri.transform[s]  # (M, 3, 2): barycentric = T[:2] @ (p - T[2])
        b2 = np.einsum("mij,mj->mi", t[:, :2], p - t[:, 2])  # (M, 2)
        bary = np.concatenate([b2, 1 - b2.sum(1, keepdims=True)], 1)  # (M, 3)
        verts = self.tri.simplices[s]  # (M, 3)
        out = np.einsum("mk,mkd->md", bary, self.z[verts].astype(np.float64))  # (M, d)
        out[~inside] = np.nan
        return out, inside

    def to_browser(self, neighbors: bool = True) -> dict:
        """points (N, 2) and codes (N, d) as float32 lists, simplices (T, 3) as vertex indices, and
        (neighbors=True) neighbors (T, 3): the triangle across the edge opposite each vertex, -1 on
        the hull, which lets the browser walk from the last probe's triangle to the next one."""
        spec = {"format": SPEC_FORMAT, "kind": "delaunay", "dim": self.dim, "points": _f32_list(self.xy),
                "codes": _f32_list(self.z), "simplices": self.tri.simplices.astype(int).tolist()}
        if neighbors:
            spec["neighbors"] = self.tri.neighbors.astype(int).tolist()
        return spec


def map_inverse(method: str, z, xy=None):
    """The inverse of core.projection.project(z, method): "raw", "pca" or "umap" (xy (N, 2) needed:
    the map that was drawn). A UMAP map of fewer than MIN_UMAP_POINTS codes is a PCA map (as in
    project), so it gets the exact PCA inverse."""
    z = _codes(z)
    if method == "raw":
        return RawInverse(z.shape[1])
    if method == "pca" or (method == "umap" and len(z) < MIN_UMAP_POINTS):
        return PcaInverse(z)
    if method == "umap":
        if xy is None:
            raise ValueError("a UMAP inverse needs the map positions xy (N, 2) that were drawn")
        return DelaunayInverse(z, xy)
    raise ValueError(f"unknown projection {method!r}; choose one of ['pca', 'umap', 'raw']")


# ----------------------------------------------------------------------------- the browser's computation

def _barycentric(pts: np.ndarray, tri: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Weights (3,) of p (2,) in triangle tri (3,) of pts (N, 2), from the vertices (no scipy)."""
    a, b, c = pts[tri[0]], pts[tri[1]], pts[tri[2]]
    det = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1])
    if det == 0:  # a flat triangle (qhull keeps none, but a hand-made spec may): nothing is inside it
        return np.array([-np.inf, -np.inf, -np.inf])
    w0 = ((b[1] - c[1]) * (p[0] - c[0]) + (c[0] - b[0]) * (p[1] - c[1])) / det
    w1 = ((c[1] - a[1]) * (p[0] - c[0]) + (a[0] - c[0]) * (p[1] - c[1])) / det
    return np.array([w0, w1, 1.0 - w0 - w1])


def _locate(pts, simplices, neighbors, p, start: int) -> tuple[int, np.ndarray | None]:
    """(triangle, weights) holding p, or (-1, None) outside the hull.

    With neighbours: the visibility walk from `start` - step across the edge opposite the most
    negative weight until none is negative; reaching the hull (-1) there means p is outside (the
    hull is convex). On a Delaunay triangulation this walk ends; the step cap and the scan after it
    guard against rounding. Without neighbours: scan every triangle."""
    if neighbors is not None:
        s = start
        for _ in range(len(simplices) + 1):
            w = _barycentric(pts, simplices[s], p)
            k = int(np.argmin(w))
            if w[k] >= -INSIDE_TOL:
                return s, w
            s = int(neighbors[s][k])
            if s < 0:
                return -1, None
    for s in range(len(simplices)):
        w = _barycentric(pts, simplices[s], p)
        if w.min() >= -INSIDE_TOL:
            return s, w
    return -1, None


def codes_from_spec(spec: dict, points) -> tuple[np.ndarray, np.ndarray]:
    """What the browser computes from `to_browser()`'s dict: (codes (M, d), inside (M,) bool), NaN
    codes outside. Pure numpy, one point at a time as the browser does; the Delaunay walk for a
    point starts in the triangle of the previous point found inside (pointer moves and grid rows
    are coherent, so a walk is a few steps)."""
    p = _points(points)  # (M, 2)
    kind = spec.get("kind")
    if spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"spec format {spec.get('format')!r} is not {SPEC_FORMAT}; rebuild it with to_browser()")
    if kind == "raw":
        return p.copy(), np.ones(len(p), bool)
    if kind == "pca":
        mean, comp = np.asarray(spec["mean"], np.float64), np.asarray(spec["components"], np.float64)  # (d,), (2, d)
        out = np.empty((len(p), len(mean)))
        for m, (x, y) in enumerate(p):
            out[m] = mean + x * comp[0] + y * comp[1]
        return out, np.ones(len(p), bool)
    if kind == "delaunay":
        pts = np.asarray(spec["points"], np.float64)  # (N, 2)
        codes = np.asarray(spec["codes"], np.float64)  # (N, d)
        simplices = np.asarray(spec["simplices"], np.int64)  # (T, 3)
        neighbors = np.asarray(spec["neighbors"], np.int64) if "neighbors" in spec else None  # (T, 3)
        out = np.full((len(p), codes.shape[1]), np.nan)
        inside = np.zeros(len(p), bool)
        start = 0
        for m, q in enumerate(p):
            s, w = _locate(pts, simplices, neighbors, q, start)
            if s >= 0:
                out[m] = w @ codes[simplices[s]]
                inside[m], start = True, s
        return out, inside
    raise ValueError(f"unknown spec kind {kind!r}; expected 'raw', 'pca' or 'delaunay'")


# ----------------------------------------------------------------------------- decoded manifold tiles

def grid_points(window, n: int) -> np.ndarray:
    """Centres of an n x n grid of tiles over the map window (x0, x1, y0, y1) -> (n * n, 2), row by
    row from the top (largest y) down, left to right: the order images are drawn in."""
    x0, x1, y0, y1 = (float(v) for v in window)
    if not (np.isfinite([x0, x1, y0, y1]).all() and x1 > x0 and y1 > y0):
        raise ValueError(f"window must be finite (x0, x1, y0, y1) with x1 > x0 and y1 > y0, got {window}")
    if not 1 <= int(n) <= 256:
        raise ValueError(f"grid size n must be in 1..256, got {n}")
    n = int(n)
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n  # (n,)
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n  # (n,) top row first
    gx, gy = np.meshgrid(xs, ys)  # (n, n)
    return np.stack([gx.ravel(), gy.ravel()], 1)


def grid_hole_depth(inverse, points, z_train, typical: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes of map points (M, 2) through `inverse` and each one's hole depth (core.holes.hole_depth_of:
    distance to the nearest training code over the typical neighbour distance) -> (codes (M, d),
    depth (M,) float64, NaN where the point is outside the data). `typical`: see hole_depth_of."""
    codes, inside = inverse.codes(points)
    depth = np.full(len(codes), np.nan)
    if inside.any():
        depth[inside] = hole_depth_of(codes[inside], np.asarray(z_train, np.float32), typical)
    return codes, depth


def nearest_code(code, z_train) -> tuple[int, float]:
    """The training code nearest to one code (d,) -> (its row in z_train (N, d), Euclidean distance): what a
    pinned probe lists beside its code (the browser computes the same from the codes it was sent)."""
    z = _codes(z_train, "training codes")
    c = np.asarray(code, np.float64).reshape(-1)
    if c.shape[0] != z.shape[1] or not np.isfinite(c).all():
        raise ValueError(f"a probe code must be {z.shape[1]} finite numbers, got {c.shape[0]}")
    dist = np.sqrt(((z - c) ** 2).sum(1))  # (N,)
    i = int(np.argmin(dist))
    return i, float(dist[i])
