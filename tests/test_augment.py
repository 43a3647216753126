"""Every registered augmentation: shapes kept, soft labels sum to 1, lambda endpoints, LSI two-hot."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from core.augment import AUGMENTATIONS, augment, list_augmentations, method_needs, parse_method, tta_predict
from core.augment.pixel import tta_views
from core.latent import decode_latents, encode_dataset


@pytest.fixture(scope="module")
def shots(request):
    from core.data import fewshot_split, load_dataset

    d = load_dataset("digits")
    idx, _ = fewshot_split(d.y, 3, 0)
    return d.x[idx], F.one_hot(d.y[idx], 10).float()          # (30, 1, 8, 8), (30, 10)


def _vectors():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(4)
    return torch.randn(12, 5, generator=g), F.one_hot(y, 3).float()


def _context(tiny_model, shape, n_classes):
    def gc(x):                                                  # a confident "classifier": class = argmax of a hash
        return F.one_hot(x.flatten(1).sum(1).mul(1000).long() % n_classes, n_classes).float()

    vae = tiny_model("vae", input_shape=shape)
    pool = torch.rand(40, *shape, generator=torch.Generator().manual_seed(3))
    return {"vae": vae, "aae-uniform": tiny_model("aae", "uniform", input_shape=shape),
            "multi-vae": [tiny_model("vae", input_shape=shape) for _ in range(n_classes)], "gc": gc,
            "teacher": gc, "pool": pool}


@pytest.mark.parametrize("name", list_augmentations())
@pytest.mark.parametrize("data", ["images", "vectors"])
def test_shapes_and_soft_labels(name, data, shots, tiny_model):
    x, y = shots if data == "images" else _vectors()
    ctx = _context(tiny_model, tuple(x.shape[1:]), y.shape[1])
    rng = torch.Generator().manual_seed(0)
    aug = AUGMENTATIONS[name]
    if "classifier" in inspect.signature(aug.fn).parameters:    # fixmatch: made while a classifier trains
        pytest.skip("needs the classifier being trained (its own tests: tests/test_fixmatch.py)")
    x2, y2 = augment(name, x, y, rng, params={name: {"n_per": 4}} if aug.stage == "expand" else {}, context=ctx)
    if aug.stage == "represent":                                # latent-probe: the codes, one row per input
        assert x2.shape == (len(x), 2) and torch.equal(y2, y)
        return
    if aug.stage == "online":                                   # only the new rows, made from this batch
        assert len(x2) == len(x) and x2.shape[1:] == x.shape[1:]
    assert x2.shape[1:] == x.shape[1:] and x2.dtype == x.dtype
    assert y2.shape == (len(x2), y.shape[1])
    torch.testing.assert_close(y2.sum(1), torch.ones(len(y2)))
    assert (y2 >= 0).all() and torch.isfinite(x2).all()
    if aug.stage == "expand":
        assert torch.equal(x2[: len(x)], x) and torch.equal(y2[: len(y)], y)
        assert len(x2) <= len(x) + 4 * y.shape[1]
        if name not in ("vae-prior-gc", "distill", "label-spread"):   # may drop unsure samples
            assert len(x2) == len(x) + 4 * y.shape[1]
        if name not in ("vae-prior-gc", "lsi", "distill", "label-spread"):  # lsi labels are two-hot: argmax is ambiguous
            counts = y2[len(x):].argmax(1).bincount(minlength=y.shape[1])
            assert (counts == 4).all()                           # n_per per class
    elif aug.stage != "online":
        assert x2.shape == x.shape
    if aug.stage in ("none", "loss", "eval"):
        assert torch.equal(x2, x) and torch.equal(y2, y)
    if data == "images" and aug.stage in ("batch", "expand", "online") and name != "label-smoothing":
        assert x2.min() >= 0 and x2.max() <= 1


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_endpoints(name, shots):
    x, y = shots
    same = augment(name, x, y, torch.Generator().manual_seed(1), params={name: {"lam": 1.0}})
    assert torch.equal(same[0], x) and torch.allclose(same[1], y)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(2))
    other = augment(name, x, y, torch.Generator().manual_seed(2), params={name: {"lam": 0.0}})
    torch.testing.assert_close(other[0], x[perm])
    torch.testing.assert_close(other[1], y[perm])
    half = augment(name, x, y, torch.Generator().manual_seed(3), params={name: {"lam": 0.5}})
    torch.testing.assert_close(half[1].sum(1), torch.ones(len(x)))


def test_label_smoothing_endpoints(shots):
    x, y = shots
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment("label-smoothing", x, y, g, params={"label-smoothing": {"eps": 0.0}})[1], y)
    uniform = augment("label-smoothing", x, y, g, params={"label-smoothing": {"eps": 1.0}})[1]
    torch.testing.assert_close(uniform, torch.full_like(y, 0.1))


def _match_reconstructions(model, x, y, x_new, y_new):
    """Each generated row equals the decoded code of some labelled row and carries that row's one-hot label."""
    recon = decode_latents(model, encode_dataset(model, x)).reshape(x.shape)
    d = torch.cdist(x_new.flatten(1), recon.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")  # (M, N)
    dist, j = d.min(1)
    assert dist.max() < 1e-5
    torch.testing.assert_close(y_new, y[j])
    return j


def test_lsi_two_hot_and_endpoints(shots, tiny_model):
    x, y = shots
    aae = tiny_model("aae", "uniform", latent_dim=4)
    ctx = {"aae-uniform": aae}
    _, y_half = augment("lsi", x, y, torch.Generator().manual_seed(0), params={"lsi": {"n_per": 5, "lam": 0.5}},
                        context=ctx)
    y_half = y_half[len(x):]
    assert ((y_half == 0.5).sum(1) == 2).all() and ((y_half == 0).sum(1) == 8).all()
    for lam in (0.0, 1.0):
        x2, y2 = augment("lsi", x, y, torch.Generator().manual_seed(0), params={"lsi": {"n_per": 5, "lam": lam}},
                         context=ctx)
        j = _match_reconstructions(aae, x, y, x2[len(x):], y2[len(x):])
        src_class = torch.arange(10).repeat_interleave(5)
        if lam == 0.0:
            assert torch.equal(y[j].argmax(1), src_class)       # the source itself
        else:
            assert (y[j].argmax(1) != src_class).all()          # the partner, from another class


@pytest.mark.parametrize("name", ["vae-interp", "vae-extrap"])
def test_knn_endpoints(name, shots, tiny_model):
    x, y = shots
    vae = tiny_model("vae", latent_dim=3)
    for alpha in ((0.0, 1.0) if name == "vae-interp" else (0.0,)):
        x2, y2 = augment(name, x, y, torch.Generator().manual_seed(0),
                         params={name: {"n_per": 6, "alpha": alpha, "random_alpha": False}}, context={"vae": vae})
        _match_reconstructions(vae, x, y, x2[len(x):], y2[len(x):])   # alpha 0: the source, 1: a same-class neighbour


def test_latent_methods_need_their_generator(shots):
    x, y = shots
    for name in ["lsi", "lsi-online", "vae-noise", "vae-interp", "multi-vae", "vae-prior-gc", "distill", "label-spread",
                 "latent-probe"]:
        with pytest.raises(ValueError, match="needs"):
            augment(name, x, y, torch.Generator().manual_seed(0))


def test_parse_and_combinations(shots, tiny_model):
    assert parse_method("none") == []
    assert [a.name for a in parse_method("classic+lsi")] == ["classic", "lsi"]
    assert method_needs("classic+lsi+vae-interp") == {"aae-uniform", "vae"}
    for bad in ["", "foo", "classic+bar"]:
        with pytest.raises(ValueError):
            parse_method(bad)
    x, y = shots
    ctx = {"aae-uniform": tiny_model("aae", "uniform")}
    rng = torch.Generator().manual_seed(0)
    xe, ye = augment("classic+lsi", x, y, rng, stage="expand", params={"lsi": {"n_per": 2}}, context=ctx)
    xb, yb = augment("classic+lsi", xe, ye, rng, stage="batch")
    assert len(xe) == len(x) + 20 and xb.shape == xe.shape and torch.equal(yb, ye)


def test_tta_probabilities(shots):
    x, _ = shots
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    p = tta_predict(model, x, n_views=5)
    assert p.shape == (len(x), 10)
    torch.testing.assert_close(p.sum(1), torch.ones(len(x)))
    assert len(tta_views(x, 5)) == 5 and torch.equal(tta_views(x, 5)[0], x)


def test_lsi_online_two_hot_and_fresh_pairs_each_batch(shots, tiny_model):
    """Seed 000: interpolation applied to each mini-batch, inter-class partners from the batch, two-hot at 0.5;
    every call (every batch) draws new pairs."""
    x, y = shots
    aae = tiny_model("aae", "uniform", latent_dim=4)
    aug = AUGMENTATIONS["lsi-online"]
    rng = torch.Generator().manual_seed(0)
    first = aug(x, y, rng, model=aae, n=len(x))
    second = aug(x, y, rng, model=aae, n=len(x))
    for x_new, y_new in (first, second):
        assert len(x_new) == len(x)
        assert ((y_new == 0.5).sum(1) == 2).all() and ((y_new == 0).sum(1) == 8).all()   # two different classes
    assert not torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])
    x_l, y_l = aug(x, y, torch.Generator().manual_seed(0), model=aae, n=7, lam=None, alpha=1.0)
    assert len(x_l) == 7 and torch.allclose(y_l.sum(1), torch.ones(7)) and (y_l > 0).sum(1).max() == 2
    one_class = aug(x[:3], y[:3], rng, model=aae)                 # a batch of one class has no inter-class pair
    assert len(one_class[0]) == 0


def test_distill_takes_the_most_confident_pool_rows(shots):
    x, y = shots
    pool = torch.rand(50, *x.shape[1:], generator=torch.Generator().manual_seed(0))
    probs = torch.full((50, 10), 0.01)
    probs[torch.arange(50), torch.arange(50) % 10] = torch.linspace(0.5, 0.95, 50)   # class r % 10, rising confidence
    lookup = {bytes(r.numpy().tobytes()): i for i, r in enumerate(pool)}

    def teacher(b):
        return probs[[lookup[bytes(r.numpy().tobytes())] for r in b]]
    x2, y2 = AUGMENTATIONS["distill"](x, y, torch.Generator(), teacher=teacher, pool_x=pool, n_per=2, threshold=0.8)
    new = [lookup[bytes(r.numpy().tobytes())] for r in x2[len(x):]]
    confident = [i for i in range(50) if probs[i].max() >= 0.8]
    assert set(new) <= set(confident)
    for c in range(10):                                          # per class the two most confident of the pool
        mine = [i for i in confident if i % 10 == c]
        assert sorted(i for i in new if i % 10 == c) == sorted(mine)[-2:]
    assert torch.equal(y2[len(x):].argmax(1), torch.tensor([i % 10 for i in new]))


# ---------------------------------------------------------------------------------------------- saliencymix

def _dots(b: int = 10, size: int = 12):
    """b images with a flat background of distinct grey levels and one bright dot at distinct places."""
    x = torch.linspace(0.1, 0.5, b).view(b, 1, 1, 1).repeat(1, 1, size, size)
    rows, cols = torch.arange(b) % size, (torch.arange(b) * 5 + 3) % size
    x[torch.arange(b), 0, rows, cols] = 1.0
    return x, torch.eye(b), rows, cols


def test_saliencymix_finds_the_dot_and_pastes_around_it():
    from core.augment.saliency_mix import most_salient_point

    x, y, rows, cols = _dots()
    cy, cx = most_salient_point(x)
    assert torch.equal(cy, rows) and torch.equal(cx, cols)
    for seed in range(5):
        out, y2 = augment("saliencymix", x, y, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(y2.sum(1), torch.ones(len(x)))
        pasted = (out != x).flatten(1)                                   # backgrounds differ: a change = a paste
        partner = y2.clone()
        partner[torch.arange(len(x)), torch.arange(len(x))] = 0          # the other class's weight
        moved = partner.sum(1) > 0
        # labels weighted by the pasted pixel fraction, exactly
        torch.testing.assert_close(partner.sum(1), pasted.float().mean(1))
        # the pasted box holds the source's dot (its most salient pixel)
        src = partner.argmax(1)
        assert (out[moved, 0, rows[src[moved]], cols[src[moved]]] == 1.0).all()
        assert moved.any()


def test_saliencymix_on_digits_keeps_the_salient_pixel_and_endpoints(shots):
    from core.augment.saliency_mix import most_salient_point

    x, y = shots
    same, y_same = augment("saliencymix", x, y, torch.Generator().manual_seed(1), params={"saliencymix": {"lam": 1.0}})
    assert torch.equal(same, x) and torch.equal(y_same, y)
    out, y2 = augment("saliencymix", x, y, torch.Generator().manual_seed(2), params={"saliencymix": {"lam": 0.5}})
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(2))   # the function's first draw
    cy, cx = most_salient_point(x[perm])
    idx = torch.arange(len(x))
    torch.testing.assert_close(out[idx, :, cy, cx], x[perm][idx, :, cy, cx])
    # the 6 x 6 box (round(8 sqrt(0.5))) gives the partner its pasted share: 36/64, less where clipped
    share = 1 - (y2 * y).sum(1)
    other = y.argmax(1) != y[perm].argmax(1)
    assert (share[other] <= 36 / 64 + 1e-6).all() and (share[other] > 0).all()
    torch.testing.assert_close(y2.sum(1), torch.ones(len(x)))


def test_static_saliency_prefers_ink_on_digits(shots):
    from core.augment.saliency_mix import most_salient_point

    x, _ = shots
    for kind in ("spectral-residual", "gradient"):
        cy, cx = most_salient_point(x, kind)
        near_ink = torch.nn.functional.max_pool2d(x, 3, 1, 1)[torch.arange(len(x)), 0, cy, cx] > 0.3
        assert near_ink.float().mean() >= 0.9, kind                   # measured 1.0 on 500 digits
    with pytest.raises(ValueError, match="saliency kind"):
        most_salient_point(x, "opencv")


# ---------------------------------------------------------------------------------------------- label-spread

class _Flatten(torch.nn.Module):
    """An 'encoder' whose codes are the inputs themselves: the embedding is the data's own geometry."""
    latent_dim = 2

    def encode(self, x):
        return x.flatten(1)


def _two_clusters(n_pool: int = 60):
    """Two well-separated 2-D clusters, mirror images through the origin; one labelled point each (the centres);
    the pool (the rest) alternates between them."""
    half = torch.tensor([-5.0, 0.0]) + 0.5 * torch.randn(n_pool // 2, 2, generator=torch.Generator().manual_seed(0))
    pool = torch.stack([half, -half], 1).reshape(n_pool, 2)                    # rows: a, -a, b, -b, ...
    truth = torch.arange(n_pool) % 2
    x = torch.tensor([[-5.0, 0.0], [5.0, 0.0]])
    return x, F.one_hot(torch.arange(2), 2).float(), pool, truth


@pytest.mark.parametrize("embedding", ["codes", "umap"])
def test_label_spread_labels_two_clusters_from_one_shot_each(embedding):
    x, y, pool, truth = _two_clusters()
    x2, y2 = AUGMENTATIONS["label-spread"](x, y, torch.Generator().manual_seed(0), model=_Flatten(), pool_x=pool,
                                           n_per=30, embedding=embedding, n_neighbors=10, umap_neighbors=25)
    assert torch.equal(x2[:2], x) and torch.equal(y2[:2], y)
    rows = torch.cdist(x2[2:], pool).argmin(1)                   # which pool row each pseudo-labelled row is
    assert torch.equal(x2[2:], pool[rows])                       # copies of pool rows, never the shots or made up
    assert len(rows) == 60 and len(set(rows.tolist())) == 60     # the whole pool, each row once
    assert torch.equal(y2[2:].argmax(1), truth[rows])            # every one labelled with its own cluster


def test_label_spread_keeps_at_most_n_per_confident_pool_rows_per_class():
    x, y, pool, truth = _two_clusters()
    pool = torch.cat([pool, torch.zeros(1, 2)])                  # midway: as many neighbours in each cluster
    aug = AUGMENTATIONS["label-spread"]
    kw = dict(model=_Flatten(), pool_x=pool, embedding="codes", n_neighbors=6)
    x2, y2 = aug(x, y, torch.Generator().manual_seed(0), n_per=7, **kw)
    assert y2[2:].argmax(1).bincount(minlength=2).tolist() == [7, 7]
    rows = torch.cdist(x2[2:], pool).argmin(1)
    assert torch.equal(x2[2:], pool[rows]) and torch.equal(y2[2:].argmax(1), truth[rows])
    x_all, y_all = aug(x, y, torch.Generator().manual_seed(0), n_per=100, threshold=0.6, **kw)
    rows = torch.cdist(x_all[2:], pool).argmin(1)
    assert sorted(rows.tolist()) == list(range(60))              # all of both clusters, never the unsure midpoint
    for bad in ({"threshold": 0.0}, {"alpha": 1.0}, {"embedding": "tsne"}, {"n_per": 0}):
        with pytest.raises(ValueError, match="label-spread|n_per"):
            aug(x, y, torch.Generator().manual_seed(0), **{**kw, **bad})


def test_label_spread_umap_is_repeatable_from_the_generator():
    x, y, pool, _ = _two_clusters()
    run = lambda seed: AUGMENTATIONS["label-spread"](x, y, torch.Generator().manual_seed(seed),  # noqa: E731
                                                     model=_Flatten(), pool_x=pool, n_per=20, umap_neighbors=10)
    state = torch.random.get_rng_state()
    a, b = run(0), run(0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(torch.random.get_rng_state(), state), "label-spread touched torch's global RNG"
    # the embedding really follows the generator (not a fixed seed): another seed, another UMAP
    from core.augment.spread import spread_embedding
    all_x = torch.cat([x, pool])
    e0, e0b, e1 = (spread_embedding(_Flatten(), all_x, torch.Generator().manual_seed(s), umap_neighbors=10)
                   for s in (0, 0, 1))
    assert (e0 == e0b).all() and not (e0 == e1).all()
