"""Nearest neighbours: exact below EXACT_LIMIT reference rows, approximate (pynndescent) above it.

Every neighbour lookup of the latent tools goes through here: the hole metrics (core.holes), the Bonn kNN
samplers (core.latent) and any code-to-code lookup on a map. Up to EXACT_LIMIT rows an exact, chunked cdist
(direct differences: the |a|^2 + |b|^2 - 2ab form loses small distances in tight clusters to float32
cancellation) keeps every record bit-identical to before. Above it an N x N pass is quadratic (60k codes: 3.6e9
distances, most of a minute on 2 cores), so an NN-descent index (pynndescent, the one umap-learn builds its
kNN graph with; Dong et al. 2011) answers instead: agreement with exact >= 0.95 on a 20k set
(tests/test_neighbours.py), built with a fixed seed, so the same codes give the same neighbours. The last few
indexes are kept by the content of their reference (a hole metric searches one set of codes twice: itself, then
the samples; 60k codes: ~40 s a build on one core).

Shapes: reference (N, d), queries (M, d) float32 on the CPU; results (M, k) distances (float32, ascending)
and indices (int64 rows of reference).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

EXACT_LIMIT = int(os.environ.get("LATENT_LAB_EXACT_KNN_LIMIT", 20_000))  # reference rows
INDEX_SEED = 0               # NN-descent draws its starting graph: a fixed seed makes the index the same every time
INDEX_NEIGHBOURS = 30        # the graph's degree: more is slower to build and more accurate to search
# The search keeps this many candidates even when fewer are asked for: on 20k clustered 16-d codes, 1-NN from a
# k=1 search agreed with exact on 0.55 of queries, from a k=10 search (epsilon 0.2) on 0.99, at 0.07 s per 1k.
SEARCH_K, SEARCH_EPSILON = 10, 0.2
KEPT_INDEXES = 2             # a 60k index holds ~60k x 30 neighbours and its search trees: tens of MB each
_kept: OrderedDict[tuple, object] = OrderedDict()
_kept_lock = threading.Lock()


def _f32(z) -> Tensor:
    return torch.as_tensor(z, dtype=torch.float32).cpu()


def use_index(n_reference: int, n_queries: int | None = None) -> bool:
    """Whether a lookup goes to the index: over EXACT_LIMIT reference rows and over EXACT_LIMIT^2 distances.
    A few thousand queries against 60k codes stay exact (a few seconds, and exact for the far-off points the
    hole metrics probe, where a graph search is weakest); the N x N pass of 60k codes does not."""
    n_queries = n_reference if n_queries is None else n_queries
    return n_reference > EXACT_LIMIT and n_queries * n_reference > EXACT_LIMIT ** 2


def exact(reference, queries, k: int, self_rows: Tensor | None = None,
          chunk_elems: int = 1 << 24) -> tuple[Tensor, Tensor]:
    """k nearest rows of reference for each query by cdist, in chunks of at most chunk_elems distances.
    self_rows (M,): the reference row each query is (never its own neighbour), or None."""
    reference, queries = _f32(reference), _f32(queries)
    k = min(k, len(reference) - (self_rows is not None))
    dists, idx = [], []
    step = max(1, chunk_elems // max(len(reference), 1))
    for start in range(0, len(queries), step):
        d = torch.cdist(queries[start:start + step], reference, compute_mode="donot_use_mm_for_euclid_dist")  # (m, N)
        if self_rows is not None:
            d[torch.arange(d.shape[0]), self_rows[start:start + step]] = float("inf")
        dist, nn = d.topk(k, dim=1, largest=False)  # (m, k)
        dists.append(dist)
        idx.append(nn)
    if not dists:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(dists), torch.cat(idx)


def _index(ref: np.ndarray, k: int):
    """The NN-descent index of ref (N, d) float32 C-contiguous, or the kept one built from the same bytes (the
    index is a function of the bytes and the settings: a fixed seed)."""
    from pynndescent import NNDescent

    n_neighbors = max(INDEX_NEIGHBOURS, k + 2)
    key = (ref.shape, hashlib.blake2b(ref.tobytes(), digest_size=16).hexdigest(), n_neighbors)
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    index = NNDescent(ref, n_neighbors=n_neighbors, random_state=INDEX_SEED, low_memory=True, verbose=False)
    with _kept_lock:
        _kept[key] = index
        while len(_kept) > KEPT_INDEXES:
            _kept.popitem(last=False)
    return index


def self_graph(reference, k: int) -> tuple[Tensor, Tensor]:
    """Each reference row's k nearest other rows, read from the index's own kNN graph (no search: on 60k codes
    the search cost a third as much again as the build, for the same answers)."""
    ref = np.ascontiguousarray(_f32(reference).numpy())
    k = min(k, len(ref) - 1)
    nn, dist = _index(ref, k).neighbor_graph                 # (N, n_neighbors), ascending, self usually first
    nn, dist = nn.copy(), dist.copy()                         # the kept index's own arrays stay untouched
    nn, dist = torch.from_numpy(nn.astype(np.int64)), torch.from_numpy(dist.astype(np.float32))
    rows = torch.arange(len(ref))
    mine = nn == rows[:, None]
    drop = torch.where(mine.any(1), mine.float().argmax(1), torch.full((len(nn),), nn.shape[1] - 1))
    keep = torch.ones_like(nn, dtype=torch.bool)
    keep[rows, drop] = False
    nn, dist = nn[keep].reshape(len(nn), -1)[:, :k], dist[keep].reshape(len(nn), -1)[:, :k]
    return dist, nn


def approximate(reference, queries, k: int, self_rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """k nearest rows by an NN-descent index over reference (pynndescent), searched with the queries."""
    ref = np.ascontiguousarray(_f32(reference).numpy())
    q = np.ascontiguousarray(_f32(queries).numpy())
    extra = int(self_rows is not None)
    k = min(k, len(ref) - extra)
    index = _index(ref, k + extra)
    search = min(max(k + extra, SEARCH_K), len(ref))
    with _kept_lock:   # a kept index is shared: its search reuses one `visited` buffer (not thread-safe)
        nn, dist = index.query(q, k=search, epsilon=SEARCH_EPSILON)   # (M, search), ascending
    nn = torch.from_numpy(nn[:, :k + extra].astype(np.int64))
    dist = torch.from_numpy(dist[:, :k + extra].astype(np.float32))
    if extra:   # drop each query's own row (or its farthest hit when the search missed itself)
        mine = nn == self_rows[:, None]
        drop = torch.where(mine.any(1), mine.float().argmax(1), torch.full((len(nn),), k))
        keep = torch.ones_like(nn, dtype=torch.bool)
        keep[torch.arange(len(nn)), drop] = False
        nn, dist = nn[keep].reshape(len(nn), k), dist[keep].reshape(len(nn), k)
    return dist, nn


def nearest(reference, queries=None, k: int = 1, self_rows: Tensor | None = None,
            approximate_above: int | None = None) -> tuple[Tensor, Tensor]:
    """(distances (M, k), indices (M, k)) of each query's k nearest reference rows; queries=None: the reference
    itself, each row excluded from its own neighbours. Exact unless use_index() (or over `approximate_above` rows)."""
    reference = _f32(reference)
    if queries is None:
        if approximate_above is None and use_index(len(reference)):
            return self_graph(reference, k)
        queries, self_rows = reference, torch.arange(len(reference))
    big = (len(reference) > approximate_above if approximate_above is not None
           else use_index(len(reference), len(queries)))
    if big:
        return approximate(reference, queries, k, self_rows)
    return exact(reference, queries, k, self_rows)


def same_class(z: Tensor, y: Tensor, k: int, sources: Tensor, chunk_elems: int = 1 << 24):
    """k nearest same-class neighbours of z[sources] (itself excluded) among all rows of z
    -> (idx (S, k), valid (S, k)); `valid` is False where a class has fewer than k other members.

    Up to EXACT_LIMIT rows: one masked cdist per block of rows, as the samplers always did (same results).
    Above it: per class, each class's own rows as the reference (exact or indexed by its size)."""
    n = len(z)
    k = min(k, max(n - 1, 1))
    if not use_index(n):
        idx, valid = [], []
        step = max(1, chunk_elems // max(n, 1))
        for rows in sources.split(step):
            d = torch.cdist(z[rows], z)  # (b, N)
            d[y[rows][:, None] != y[None, :]] = float("inf")
            d[torch.arange(len(rows)), rows] = float("inf")
            dist, nn = d.topk(k, dim=1, largest=False)  # (b, k)
            idx.append(nn)
            valid.append(torch.isfinite(dist))
        return torch.cat(idx), torch.cat(valid)
    idx = torch.zeros(len(sources), k, dtype=torch.long)
    valid = torch.zeros(len(sources), k, dtype=torch.bool)
    for c in torch.unique(y[sources]):
        members = torch.nonzero(y == c).flatten()            # (Nc,) rows of class c
        at = torch.nonzero(y[sources] == c).flatten()        # positions in sources
        if len(members) < 2:
            continue
        where = torch.full((n,), -1, dtype=torch.long)
        where[members] = torch.arange(len(members))
        _, nn = nearest(z[members], z[sources[at]], k, self_rows=where[sources[at]])  # (s, kc), kc <= k
        idx[at, :nn.shape[1]] = members[nn]
        valid[at, :nn.shape[1]] = True
    return idx, valid
