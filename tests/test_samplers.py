"""core.samplers, core.sample_quality, core.sampler_table and `python -m core samplers` (issue 14, item 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import sample_quality as sq
from core.config import ModelConfig
from core.holes import hole_fraction
from core.models import build_model
from core.sampler_table import (RECON_ROW, REAL_ROW, format_table, held_out_images, measure_samplers,
                                paired_difference, read_records, sampler_records_job, summarise)
from core.samplers import EX_POST_CANDIDATES, draw_codes, fit_ex_post, get_sampler, list_samplers
from tests.conftest import REPO


def _clustered_codes(n=1200, d=3, seed=0):
    """Codes in 4 tight, well separated clusters (N, d), with the cluster as label: a latent space with holes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0, 0], [-3.0, 0, 0], [0, 3.0, 0], [0, -3.0, 2.0]])[:, :d]
    y = torch.randint(4, (n,), generator=g)
    return centres[y] + 0.2 * torch.randn(n, d, generator=g), y


def _model(prior: str, latent_dim: int = 3):
    kind = "ae" if prior == "none" else "aae"
    return build_model(ModelConfig(kind=kind, prior=prior, input_shape=(1, 8, 8), latent_dim=latent_dim, hidden=32))


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """Feature classifiers trained by these tests go to a temp folder (shared by the module: each data set's net is
    trained once), not the repo's .cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sq, "DEFAULT_CACHE_DIR", tmp_path_factory.mktemp("feature-classifier"))
        yield


# ----------------------------------------------------------------------------- the registry

@pytest.mark.parametrize("name", list_samplers())
@pytest.mark.parametrize("prior", ["none", "uniform", "gaussian"])
def test_every_sampler_returns_finite_codes_reproducibly(name, prior):
    z, y = _clustered_codes()
    model = _model(prior)
    draw = lambda seed: draw_codes(name, model, z, 257, torch.Generator().manual_seed(seed),  # noqa: E731
                                   context={"y_train": y})
    a, b, c = draw(1), draw(1), draw(2)
    assert a.shape == (257, 3) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b), "same generator seed, different codes"
    assert not torch.equal(a, c), "different generator seeds, same codes"
    if name == "prior" and prior == "uniform":
        assert a.abs().max() <= 1 and a.abs().max() > 0.9  # the uniform AAE's box U[-1, 1]^d, filled


def test_samplers_leave_the_global_random_state_alone():
    z, y = _clustered_codes()
    model = _model("none")
    state = torch.get_rng_state()
    for name in list_samplers():
        draw_codes(name, model, z, 50, torch.Generator().manual_seed(0), context={"y_train": y})
    assert torch.equal(state, torch.get_rng_state())


def test_knn_interpolate_stays_between_same_class_codes():
    z, y = _clustered_codes()
    out = draw_codes("knn-interpolate", None, z, 400, torch.Generator().manual_seed(0), context={"y_train": y})
    # every sample is the midpoint of two codes of one cluster: it sits inside that cluster, never between two
    nearest_label = y[torch.cdist(out, z).argmin(1)]
    centres = torch.stack([z[y == c].mean(0) for c in range(4)])
    assert ((out - centres[nearest_label]).norm(dim=1) < 1.0).all()


def test_draw_codes_refuses_what_it_cannot_do():
    z, _ = _clustered_codes()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="unknown sampler"):
        draw_codes("nope", None, z, 10, g)
    with pytest.raises(ValueError, match="no setting"):
        draw_codes("prior", _model("none"), z, 10, g, alpha=2.0)
    with pytest.raises(ValueError, match="torch.Generator"):
        draw_codes("ex-post", None, z, 10, 0)
    with pytest.raises(ValueError, match="n must be"):
        draw_codes("noise", None, z, 0, g)
    assert get_sampler("knn-interpolate").accepts("y_train") and not get_sampler("prior").accepts("y_train")


# ----------------------------------------------------------------------------- ex-post density (Ghosh et al.)

def test_ex_post_is_reproducible_from_an_explicit_generator_and_picks_the_mixture_size_on_validation():
    z, _ = _clustered_codes()
    a = fit_ex_post(z, torch.Generator().manual_seed(3))
    b = fit_ex_post(z, torch.Generator().manual_seed(3))
    assert a.k == b.k and torch.equal(a.means, b.means)
    assert set(a.val_loglik) == set(EX_POST_CANDIDATES)
    assert a.val_loglik[a.k] == max(a.val_loglik.values())
    assert a.k >= 4  # four clusters: one Gaussian explains the held-out codes worse than four
    assert a.val_loglik[4 if 4 in a.val_loglik else 5] > a.val_loglik[1] + 1.0
    details = {}
    draw_codes("ex-post", None, z, 10, torch.Generator().manual_seed(0), context={"details": details})
    assert details["k"] in EX_POST_CANDIDATES


def test_ex_post_samples_follow_the_fitted_mixture():
    z, y = _clustered_codes(n=2000)
    out = draw_codes("ex-post", None, z, 4000, torch.Generator().manual_seed(0))
    share = torch.bincount(torch.cdist(out, torch.stack([z[y == c].mean(0) for c in range(4)])).argmin(1),
                           minlength=4).float() / len(out)
    truth = torch.bincount(y, minlength=4).float() / len(y)
    assert torch.allclose(share, truth, atol=0.03)
    assert abs(float(out.std(0).mean()) - float(z.std(0).mean())) < 0.1


def test_ex_post_leaves_fewer_samples_in_holes_than_the_prior_on_the_shipped_plain_ae():
    """Ghosh et al.'s argument, measured on the shipped z = 2 plain AE (its "prior" is a diagonal Gaussian fitted
    to the codes, core.latent.sample_prior). Measured (docs/records/samplers.csv, 5 seeds, n = 2,000): hole share
    prior ~0.14, ex-post ~0.05, real held-out codes ~0.04."""
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.latent import encode_dataset

    folder = REPO / "checkpoints" / "mnist5k-ae-z2"
    if not (folder / "config.json").is_file():
        pytest.skip("the shipped mnist5k-ae-z2 checkpoint is not present")
    model = load_checkpoint(folder, device="cpu").model
    z = encode_dataset(model, load_dataset("mnist5k").x)
    share = {name: hole_fraction(z, draw_codes(name, model, z, 2000, torch.Generator().manual_seed(0)))
             for name in ("prior", "ex-post")}
    print("hole share", share)
    assert share["ex-post"] < share["prior"] - 0.05, share
    assert share["ex-post"] < 0.09, share  # near the 0.05 of samples distributed like the codes


# ----------------------------------------------------------------------------- distances in feature space

def test_frechet_distance_is_zero_on_itself_and_a_mean_shift_squared():
    g = np.random.default_rng(0)
    a = g.normal(size=(3000, 5)) @ g.normal(size=(5, 5))
    assert sq.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0, -2.0])
    assert sq.frechet_distance(a, a + shift) == pytest.approx(9.0, rel=1e-6)  # same covariance: ||shift||^2
    dead = np.hstack([a, np.zeros((len(a), 3))])  # ReLU units dead on every row: no effect, no warning
    assert sq.frechet_distance(dead, dead + np.r_[shift, 0, 0, 0]) == pytest.approx(9.0, rel=1e-6)


def test_precision_recall_of_a_set_against_itself_is_one_and_against_far_away_points_zero():
    g = np.random.default_rng(0)
    real = g.normal(size=(800, 8))
    other = g.normal(size=(800, 8))
    assert sq.precision_recall(real, real) == (1.0, 1.0)
    same = sq.manifold_figures(real, real)
    assert same["coverage"] == 1.0 and same["density"] >= 1.0  # each point lies in its own ball and k others
    p, r = sq.precision_recall(real, other)
    assert p > 0.8 and r > 0.8
    assert sq.precision_recall(real, other + 20.0) == (0.0, 0.0)
    # a collapsed generator (all samples near one real point): precise, no recall
    p, r = sq.precision_recall(real, real[:1] + 0.01 * g.normal(size=(800, 8)))
    assert p == 1.0 and r < 0.05
    collapsed = real[:1] + 0.01 * g.normal(size=(800, 8))
    assert sq.manifold_figures(real, collapsed)["coverage"] < 0.03  # only the few balls around one point
    with pytest.raises(ValueError, match="more than k"):
        sq.precision_recall(real[:3], other)


@pytest.fixture(scope="module")
def digit_halves():
    from core.data import load_dataset

    data = load_dataset("digits")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    return data, data.subset(order[:900]), data.x[order[900:]]


def test_feature_space_separates_real_digits_from_noise(digit_halves, tmp_path):
    """Issue 14's check, on scikit-learn's digits (seconds): the classifier-feature FD between two halves of a
    real set is far below real vs noise; precision / recall of real vs real are high; against uniform noise recall
    and coverage are ~0. Precision is NOT ~0 against noise (measured 0.42 here, 0.99 on MNIST test images): the
    noise features sit in the ball of one atypical real image (Kynkaenniemi precision is not robust to real
    outliers; Naeem et al.'s density / coverage are, hence the extra columns)."""
    data, train, held = digit_halves
    net = sq.feature_classifier(train, seed=0)
    first, second = sq.classifier_features(net, held[:440]), sq.classifier_features(net, held[440:880])
    noise = sq.classifier_features(net, torch.rand(440, *data.input_shape, generator=torch.Generator().manual_seed(1)))
    fd_real, fd_noise = sq.frechet_distance(first, second), sq.frechet_distance(first, noise)
    real, fake = sq.manifold_figures(first, second), sq.manifold_figures(first, noise)
    print(f"digits FD real/real {fd_real:.2f} real/noise {fd_noise:.2f}; real {real}; noise {fake}")
    assert fd_noise > 20 * fd_real
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and real["coverage"] > 0.8 and real["density"] > 0.8
    assert fake["recall"] < 0.05 and fake["coverage"] < 0.05
    assert fake["precision"] < real["precision"] - 0.3 and fake["density"] < real["density"] / 2


def test_feature_classifier_is_trained_once_and_read_back_from_its_cache_file(digit_halves):
    _, train, held = digit_halves
    net = sq.feature_classifier(train, seed=0)
    path = sq._cache_path(train, 0, sq._recipe(), None)
    assert path.parent == sq.DEFAULT_CACHE_DIR and path.is_file()
    assert sq.feature_classifier(train, seed=0) is net  # in memory
    sq._FEATURE_NETS.clear()
    stamp = path.stat().st_mtime_ns
    again = sq.feature_classifier(train, seed=0)  # from the file, not retrained
    assert again is not net and path.stat().st_mtime_ns == stamp
    assert np.array_equal(sq.classifier_features(net, held[:50]), sq.classifier_features(again, held[:50]))
    path.write_bytes(b"damaged")
    sq._FEATURE_NETS.clear()
    retrained = sq.feature_classifier(train, seed=0)  # a damaged file is replaced, not trusted
    assert np.array_equal(sq.classifier_features(net, held[:50]), sq.classifier_features(retrained, held[:50]))


# ----------------------------------------------------------------------------- the table and the command

@pytest.fixture(scope="module")
def digits_ae(digit_halves):
    from core.config import TrainConfig
    from core.train import fit

    data, train, _ = digit_halves
    model = build_model(ModelConfig(kind="ae", prior="none", input_shape=data.input_shape, latent_dim=2, hidden=64))
    fit(model, train, TrainConfig(epochs=3, batch_size=64, seed=0, device="cpu"))
    return model.eval()


def test_measure_samplers_gives_one_record_per_sampler_and_seed_and_the_summary_intervals(digit_halves, digits_ae):
    _, train, held = digit_halves
    records = measure_samplers(digits_ae, train, held, ["prior", "ex-post"], seeds=[0, 1, 2], n=200,
                               model_name="tiny-ae")
    assert [(r["sampler"], r["seed"]) for r in records] == [
        (s, seed) for seed in (0, 1, 2) for s in (REAL_ROW, RECON_ROW, "prior", "ex-post")]
    for r in records:
        assert r["n"] == 200 and r["model"] == "tiny-ae" and r["latent_dim"] == 2
        assert all(math.isfinite(r[f]) for f in sq.FIGURES)
        assert 0 <= r["hole_share"] <= 1 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    again = measure_samplers(digits_ae, train, held, ["prior", "ex-post"], seeds=[1], n=200, model_name="tiny-ae")
    assert again == [{**r, "seconds": a["seconds"]} for r, a in zip(records[4:8], again)]  # a seed is a seed
    summary = summarise(records)
    assert [(s["sampler"], s["n_seeds"]) for s in summary] == [(REAL_ROW, 3), (RECON_ROW, 3), ("prior", 3),
                                                               ("ex-post", 3)]
    from scipy import stats

    fd = [r["fd"] for r in records if r["sampler"] == "prior"]
    half = stats.t.ppf(0.975, 2) * np.std(fd, ddof=1) / math.sqrt(3)
    prior = summary[2]
    assert prior["fd"] == pytest.approx(np.mean(fd)) and prior["fd_hi"] - prior["fd"] == pytest.approx(half)
    diff = paired_difference(records, "fd", ("tiny-ae", "prior"), ("tiny-ae", "ex-post"))
    per_seed = [b["fd"] - a["fd"] for a, b in zip(records[2::4], records[3::4])]
    assert diff["n_seeds"] == 3 and diff["mean"] == pytest.approx(np.mean(per_seed))
    assert diff["lo"] < diff["mean"] < diff["hi"]
    table = format_table(summary)
    assert "classifier-feature FD" in table and "ex-post (k=" in table and "tiny-ae" in table


def test_samplers_command_writes_csv_records_and_prints_the_table(digit_halves, digits_ae, tmp_path, capsys):
    from core.__main__ import main
    from core.checkpoints import save_checkpoint

    data = digit_halves[0]
    save_checkpoint(tmp_path / "tiny-ae", digits_ae, dataset_id="digits", class_names=list(data.class_names))
    out = tmp_path / "samplers.csv"
    rc = main(["samplers", "--checkpoints", str(tmp_path / "tiny-ae"), "--held-out", "digits", "--seeds", "2",
               "--n", "100", "--samplers", "prior", "knn-interpolate", "--out", str(out)])
    assert rc == 0
    rows = read_records(out)
    assert len(rows) == 2 * 4 and {r["sampler"] for r in rows} == {REAL_ROW, RECON_ROW, "prior", "knn-interpolate"}
    assert all(r["held_out"] == "digits" and r["model"] == "tiny-ae" for r in rows)
    printed = capsys.readouterr().out
    assert "| tiny-ae | knn-interpolate |" in printed and "not Inception-FID" in printed
    assert len(summarise(rows)) == 4  # the CSV reads back into the same summary
    assert main(["samplers", "--checkpoints", str(tmp_path / "tiny-ae"), "--held-out", "idx:/nonexistent"]) == 1
    # the executor job the page can submit: plain arguments in, the same records out
    job = sampler_records_job(str(tmp_path / "tiny-ae"), "digits", ["prior"], seeds=2, n=100)
    fd_of = lambda rs: [f"{float(r['fd']):.6g}" for r in rs if r["sampler"] == "prior"]  # noqa: E731
    assert fd_of(job) == fd_of(rows)


def test_without_a_held_out_set_the_training_data_is_used_and_labelled_so(digit_halves, monkeypatch, tmp_path):
    import core.sampler_table as st

    data = digit_halves[0]
    monkeypatch.setattr(st, "DEFAULT_HELD_OUT", tmp_path / "missing")
    x, label = held_out_images(None, data)
    assert x is data.x and label == f"digits {st.NOT_HELD_OUT}"
    with pytest.raises(ValueError, match="same shape"):
        held_out_images("breast-cancer", data)
