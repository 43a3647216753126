"""Map point -> latent code inverses (core.cartography) and the hole depth of decoded-manifold tiles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from core.cartography import (DelaunayInverse, PcaInverse, RawInverse, codes_from_spec, grid_hole_depth, grid_points,
                              map_inverse)
from core.holes import hole_depth, hole_depth_of, typical_nn_distance
from core.projection import pca_2d


def _blobs(n=400, d=8, seed=0):
    """Anisotropic codes (N, d) with a 2-D map of them that is not linear in z (like a UMAP)."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, d)) * np.linspace(3, 0.5, d)).astype(np.float32)
    xy = np.stack([np.tanh(z[:, 0] / 2) + 0.3 * z[:, 2], z[:, 1] + 0.1 * z[:, 0] ** 2], 1).astype(np.float32)
    return z, xy


# ----------------------------------------------------------------------------- raw, PCA

def test_raw_inverse_is_the_identity_and_only_for_2d_codes():
    pts = np.array([[0.5, -1.0], [3.0, 2.0]])
    codes, inside = RawInverse(2).codes(pts)
    assert np.array_equal(codes, pts) and inside.all()
    assert codes_from_spec(json.loads(json.dumps(RawInverse().to_browser())), pts)[0].tolist() == pts.tolist()
    with pytest.raises(ValueError, match="PCA or UMAP"):
        map_inverse("raw", np.zeros((5, 16)))


def test_pca_inverse_is_exact_on_the_plane():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((10, 2)))[0].T  # (2, 10) orthonormal
    z = (np.array([1.0, -2, 0.5, 0, 3, 1, 1, -1, 2, 0]) + (rng.standard_normal((300, 2)) * [4, 1]) @ basis)
    z = z.astype(np.float32)  # (300, 10), all on one plane
    back, inside = PcaInverse(z).codes(pca_2d(z))
    assert inside.all()
    np.testing.assert_allclose(back, z, atol=2e-5 * np.abs(z).max())  # xy is float32: float precision


def test_pca_inverse_returns_the_orthogonal_projection_onto_the_plane():
    z, _ = _blobs(d=12)
    mean = z.astype(np.float64).mean(0)
    v2 = np.linalg.svd(z - mean, full_matrices=False)[2][:2]  # (2, d) top principal directions, independent of eigh
    expected = mean + (z - mean) @ v2.T @ v2  # (N, d)
    inv = map_inverse("pca", z)
    back, _ = inv.codes(pca_2d(z))
    np.testing.assert_allclose(back, expected, atol=1e-5 * np.abs(z).max())
    assert np.abs(back - z).max() > 1  # off-plane codes really moved
    np.testing.assert_allclose(inv.codes([[0.0, 0.0]])[0][0], mean)  # the map's origin is the code mean
    spec = json.loads(json.dumps(inv.to_browser()))
    np.testing.assert_allclose(codes_from_spec(spec, pca_2d(z))[0], back, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- Delaunay (UMAP)

def test_barycentric_inverse_on_one_triangle_and_outside_it():
    z = np.array([[0.0, 0, 0], [4, 0, 0], [0, 8, 2]])
    inv = DelaunayInverse(z, [[0, 0], [1, 0], [0, 1]])
    codes, inside = inv.codes([[0.25, 0.25], [1, 1], [-0.01, 0.5], [0.5, 0.5]])
    assert inside.tolist() == [True, False, False, True]
    np.testing.assert_allclose(codes[0], 0.5 * z[0] + 0.25 * z[1] + 0.25 * z[2])
    np.testing.assert_allclose(codes[3], 0.5 * z[1] + 0.5 * z[2])  # on the hull's edge: still inside
    assert np.isnan(codes[1]).all() and np.isnan(codes[2]).all()  # outside: NaN, never extrapolated


def test_barycentric_inverse_passes_through_every_data_code():
    z, xy = _blobs()
    codes, inside = map_inverse("umap", z, xy).codes(xy)
    assert inside.all()
    np.testing.assert_allclose(codes, z, atol=1e-5)


@pytest.mark.parametrize("neighbors", [True, False])
def test_browser_reference_equals_codes_after_json(neighbors):
    """What the browser computes from the JSON it is sent equals codes(), points inside and out."""
    z, xy = _blobs(n=300)
    inv = DelaunayInverse(z, xy)
    rng = np.random.default_rng(2)
    lo, hi = xy.min(0), xy.max(0)
    pts = np.r_[rng.uniform(lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo), (150, 2)),  # many outside
                grid_points((lo[0], hi[0], lo[1], hi[1]), 8)]  # a grid, walked row by row
    codes, inside = inv.codes(pts)
    spec = json.loads(json.dumps(inv.to_browser(neighbors=neighbors)))
    assert ("neighbors" in spec) == neighbors
    ref, ref_inside = codes_from_spec(spec, pts)
    assert 20 < inside.sum() < len(pts) - 20  # both cases present
    assert np.array_equal(ref_inside, inside)
    np.testing.assert_allclose(ref[inside], codes[inside], atol=1e-9)
    assert np.isnan(ref[~inside]).all() and np.isnan(codes[~inside]).all()


def test_a_point_beyond_the_hull_is_outside_and_inside_points_stay_in_the_data_range():
    z, xy = _blobs()
    inv = map_inverse("umap", z, xy)
    far = xy.max(0) + 1.0
    assert not inv.codes(far)[1].any()
    codes, inside = inv.codes(xy[:50] * 0.5 + xy[50:100] * 0.5)
    assert (codes[inside] >= z.min(0) - 1e-6).all() and (codes[inside] <= z.max(0) + 1e-6).all()  # convex mixes


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="at least 3"):
        DelaunayInverse(np.zeros((2, 4)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one line"):
        DelaunayInverse(np.ones((5, 4)), np.c_[np.arange(5.0), np.arange(5.0)])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        DelaunayInverse(np.ones((5, 4)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="needs the map positions"):
        map_inverse("umap", np.ones((20, 4)))
    with pytest.raises(ValueError, match="unknown projection"):
        map_inverse("tsne", np.ones((20, 4)))
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        RawInverse().codes(np.ones((3, 3)))


def test_a_small_umap_map_is_a_pca_map_and_gets_the_exact_inverse():
    z, _ = _blobs(n=8)
    assert isinstance(map_inverse("umap", z, pca_2d(z)), PcaInverse)  # as core.projection.project does


# ----------------------------------------------------------------------------- tiles and their hole depth

def test_grid_points_cover_the_window_row_by_row_from_the_top():
    g = grid_points((0, 4, 10, 12), 4)  # (16, 2)
    assert g.shape == (16, 2)
    assert g[0].tolist() == [0.5, 11.75] and g[3].tolist() == [3.5, 11.75] and g[-1].tolist() == [3.5, 10.25]
    with pytest.raises(ValueError, match="x1 > x0"):
        grid_points((1, 0, 0, 1), 4)


def test_tile_hole_depth_equals_the_hole_definition():
    """Each tile: distance to the nearest training code / median nearest-neighbour distance among the
    training codes (computed here independently with scipy), NaN outside the data."""
    z, xy = _blobs(n=300)
    inv = DelaunayInverse(z, xy)
    lo, hi = xy.min(0), xy.max(0)
    pts = grid_points((lo[0] - 1, hi[0] + 1, lo[1] - 1, hi[1] + 1), 12)
    codes, depth = grid_hole_depth(inv, pts, z)
    inside = inv.codes(pts)[1]
    assert np.isnan(depth[~inside]).all() and np.isfinite(depth[inside]).all() and (~inside).any()
    d_train = cdist(z, z)
    np.fill_diagonal(d_train, np.inf)
    nn = np.sort(d_train.min(1))
    typical = nn[(len(nn) - 1) // 2]  # core.holes takes torch's median: the lower middle value of an even count
    expected = cdist(codes[inside], z).min(1) / typical
    np.testing.assert_allclose(depth[inside], expected, rtol=1e-5)
    np.testing.assert_allclose(grid_hole_depth(inv, pts, z, typical_nn_distance(z))[1], depth)  # cached unit
    assert np.ptp(depth[inside]) > 0.5  # tiles near codes and tiles between them shade differently


def test_hole_depth_of_is_the_per_code_form_of_hole_depth():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((500, 4)).astype(np.float32)
    samples = rng.uniform(-3, 3, (301, 4)).astype(np.float32)  # odd count: the median is one sample's depth
    per_code = hole_depth_of(samples, z)
    assert per_code.shape == (301,)
    assert float(np.median(per_code)) == hole_depth(z, samples)
