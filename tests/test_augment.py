"""Every registered augmentation: shapes kept, soft labels sum to 1, lambda endpoints, LSI two-hot."""
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
        if name not in ("vae-prior-gc", "distill"):              # the GC / teacher may drop unsure samples
            assert len(x2) == len(x) + 4 * y.shape[1]
        if name not in ("vae-prior-gc", "lsi", "distill"):       # lsi labels are two-hot: argmax is ambiguous
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
    for name in ["lsi", "lsi-online", "vae-noise", "vae-interp", "multi-vae", "vae-prior-gc", "distill", "latent-probe"]:
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
