"""Nearest neighbours: the approximate index agrees with exact search where both run, and the samplers and hole
metrics give what they gave before below the limit and sensible answers above it."""

from __future__ import annotations

import pytest
import torch

from core import neighbours


def codes(n: int, d: int = 16, classes: int = 10, seed: int = 0):
    """Clustered codes like an encoder's: (n, d) and labels (n,)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=gen) * 3
    y = torch.randint(0, classes, (n,), generator=gen)
    return centres[y] + torch.randn(n, d, generator=gen), y


@pytest.mark.heavy   # ~55 s, mostly pynndescent's JIT (numba cannot cache it)
def test_approximate_agrees_with_exact_on_20k():
    z, _ = codes(21_000)
    reference, queries = z[:20_000], z[20_000:]
    _, exact = neighbours.exact(reference, queries, k=1)
    _, approx = neighbours.approximate(reference, queries, k=1)
    agree = (exact[:, 0] == approx[:, 0]).float().mean().item()
    assert agree >= 0.95, agree
    # and itself as the queries (the holes' threshold): each row's own row excluded
    rows = torch.arange(0, 20_000, 20)
    _, exact_self = neighbours.exact(reference, reference[rows], k=1, self_rows=rows)
    _, approx_self = neighbours.approximate(reference, reference[rows], k=1, self_rows=rows)
    assert (approx_self[:, 0] != rows).all()
    assert (exact_self[:, 0] == approx_self[:, 0]).float().mean().item() >= 0.95
    _, graph = neighbours.self_graph(reference, k=1)                  # the whole set against itself
    assert (graph[rows, 0] == exact_self[:, 0]).float().mean().item() >= 0.95


def test_the_index_is_the_same_every_time():
    z, _ = codes(3_000, seed=1)
    a = neighbours.approximate(z, z[:200], k=5)[1]
    b = neighbours.approximate(z, z[:200], k=5)[1]
    assert torch.equal(a, b)


def test_exact_excludes_self_and_sorts():
    z, _ = codes(500, seed=2)
    dist, idx = neighbours.nearest(z, k=3)
    assert (idx != torch.arange(500)[:, None]).all()
    assert (dist[:, :-1] <= dist[:, 1:]).all()
    brute = torch.cdist(z, z) + torch.diag(torch.full((500,), float("inf")))
    assert torch.equal(idx[:, 0], brute.argmin(1))


def test_same_class_above_the_limit_matches_below(monkeypatch):
    z, y = codes(2_000, seed=3)
    sources = torch.arange(0, 2_000, 7)
    exact_idx, exact_valid = neighbours.same_class(z, y, 5, sources)
    monkeypatch.setattr(neighbours, "EXACT_LIMIT", 500)   # 2,000 rows: per class (~200 rows each: exact again)
    idx, valid = neighbours.same_class(z, y, 5, sources)
    assert valid.all() and exact_valid.all()
    assert (y[idx] == y[sources][:, None]).all() and (idx != sources[:, None]).all()
    assert torch.equal(idx, exact_idx)
    monkeypatch.setattr(neighbours, "EXACT_LIMIT", 50)    # each class indexed now
    idx, valid = neighbours.same_class(z, y, 5, sources)
    assert (y[idx] == y[sources][:, None]).all() and (idx != sources[:, None]).all()
    assert (idx[:, 0] == exact_idx[:, 0]).float().mean() >= 0.95


def test_hole_distances_above_the_limit(monkeypatch):
    """The N x N pass goes to the index above the limit; a few far-off samples stay exact (a graph search is
    weakest far from the data, which is where hole samples lie)."""
    from core import holes

    z, _ = codes(3_000, seed=4)
    samples = torch.randn(300, 16) * 4
    exact_self = holes.nn_distances(z, z, exclude_self=True)
    exact = holes.nn_distances(samples, z)
    monkeypatch.setattr(neighbours, "EXACT_LIMIT", 1_000)
    assert neighbours.use_index(3_000) and not neighbours.use_index(3_000, 300)
    approx_self = holes.nn_distances(z, z, exclude_self=True)
    assert (approx_self > 0).all()
    assert torch.isclose(approx_self, exact_self, rtol=1e-4).float().mean() >= 0.95
    assert torch.equal(holes.nn_distances(samples, z), exact)


def test_an_index_is_built_once_for_the_same_codes_and_answers_as_a_fresh_one(monkeypatch):
    """A hole metric searches one set of codes twice (itself, then the samples): the second search reuses the
    index built from the same bytes, and a kept index answers exactly as a freshly built one."""
    import pynndescent

    builds = []

    class Counting(pynndescent.NNDescent):
        def __init__(self, data, **kw):
            builds.append(len(data))
            super().__init__(data, **kw)

    monkeypatch.setattr(pynndescent, "NNDescent", Counting)
    monkeypatch.setattr(neighbours, "_kept", type(neighbours._kept)())
    z, _ = codes(3_000, seed=5)
    first = neighbours.approximate(z, z[:300], k=3)
    graph = neighbours.self_graph(z, k=1)
    again = neighbours.approximate(z.clone(), z[:300], k=3)        # another tensor, the same bytes
    assert builds == [3_000]
    assert torch.equal(first[1], again[1]) and torch.equal(first[0], again[0])
    neighbours._kept.clear()
    fresh = neighbours.approximate(z, z[:300], k=3)
    assert builds == [3_000, 3_000] and torch.equal(fresh[1], first[1])
    assert torch.equal(neighbours.self_graph(z, k=1)[1], graph[1])
    neighbours.approximate(z + 1.0, z[:300], k=3)                   # other codes: a new index
    assert builds == [3_000, 3_000, 3_000]
