"""Augmented data you can take away: `python -m core augment` writes an .npz that loads again as a data set,
with soft labels and the rows each example was made from."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.__main__ import main
from core.augment_export import build_augmented, make_set, read_export
from core.data import load_dataset
from app_support import app_checkpoints, app_env  # noqa: F401  (fixtures of the page downloads)

REPO = Path(__file__).resolve().parent.parent
AAE_UNIFORM = REPO / "checkpoints" / "mnist5k-aae-uniform-z16"


def test_cli_round_trip_mixup(tmp_path, digits, capsys):
    out = tmp_path / "aug.npz"
    assert main(["augment", "--dataset", "digits", "--shots", "3", "--method", "mixup", "--n", "5",
                 "--seed", "4", "--param", "alpha=0.4", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    f = read_export(out)
    back = load_dataset(f"npz:{out}")
    # the file loads as a data set: the same images and hard labels, the class names kept
    assert back.x.shape == (80, 1, 8, 8) and f["X"].shape == (80, 8, 8)
    np.testing.assert_array_equal(back.x[:, 0].numpy(), f["X"])
    np.testing.assert_array_equal(back.y.numpy(), f["y"])
    assert back.class_names == digits.class_names
    np.testing.assert_allclose(f["y_soft"].sum(1), 1, atol=1e-6)
    np.testing.assert_array_equal(f["y"], f["y_soft"].argmax(1))
    # provenance: 30 real shots (5 per class generated on top), method, parameters, data set, seed, versions
    meta = f["meta"]
    assert (meta["method"], meta["dataset"], meta["shots"], meta["seed"]) == ("mixup", "digits", 3, 4)
    assert meta["params"]["alpha"] == 0.4 and meta["generator_checkpoint"] is None and "torch" in meta["versions"]
    real, gen = ~f["generated"], f["generated"]
    assert real.sum() == 30 and gen.sum() == 50
    np.testing.assert_array_equal(f["X"][real], digits.x[f["source_index"][real, 0], 0].numpy())
    # every mixed row is lam x[src0] + (1 - lam) x[src1] of the original rows, labels alike
    s, lam = f["source_index"][gen], f["lam"][gen]
    mixed = s[:, 1] >= 0
    assert mixed.sum() >= 40 and np.isnan(lam[~mixed]).all()
    x0, x1 = digits.x[s[mixed, 0], 0].numpy(), digits.x[s[mixed, 1], 0].numpy()
    lm = lam[mixed][:, None, None]
    np.testing.assert_allclose(f["X"][gen][mixed], lm * x0 + (1 - lm) * x1, atol=1e-5)
    y0, y1 = digits.y[s[mixed, 0]].numpy(), digits.y[s[mixed, 1]].numpy()
    ys = f["y_soft"][gen][mixed]
    np.testing.assert_allclose(ys[np.arange(len(ys)), y0], np.where(y0 == y1, 1, lam[mixed]), atol=1e-5)
    # the target row's class decides the count: n per class
    assert (np.bincount(digits.y[s[:, 0]].numpy(), minlength=10) == 5).all()
    # nothing in the file needs pickle
    with zipfile.ZipFile(out) as z:
        for name in z.namelist():
            assert np.load(out, allow_pickle=False)[name.removesuffix(".npy")].dtype != object


def test_cutmix_share_is_the_pasted_area(digits):
    aug = build_augmented("digits", 2, "saliencymix", 4, seed=1)
    g = aug.generated & (aug.source_index[:, 1] >= 0)
    s = aug.source_index[g]
    x0, x1 = digits.x[s[:, 0]].numpy(), digits.x[s[:, 1]].numpy()
    from_1 = (aug.x[g] == x1) & (x0 != x1)                                     # pixels that can only be pasted
    assert ((aug.x[g] == x0) | (aug.x[g] == x1)).all()
    assert (from_1.reshape(len(s), -1).mean(1) <= 1 - aug.lam[g] + 1e-6).all()


@pytest.mark.skipif(not AAE_UNIFORM.is_dir(), reason="shipped checkpoint missing")
def test_latent_export_with_a_shipped_checkpoint(tmp_path):
    out = tmp_path / "lsi.npz"
    assert main(["augment", "--dataset", "mnist5k", "--shots", "2", "--method", "lsi", "--n", "3",
                 "--checkpoint", str(AAE_UNIFORM), "--only-generated", "--out", str(out)]) == 0
    f = read_export(out)
    data = load_dataset("mnist5k")
    assert len(f["X"]) == 30 and f["generated"].all()
    s = f["source_index"]
    c0, c1 = data.y[s[:, 0]].numpy(), data.y[s[:, 1]].numpy()
    assert (s >= 0).all() and (c0 != c1).all()                                  # two sources of different classes
    np.testing.assert_allclose(f["lam"], 0.5)
    np.testing.assert_allclose(f["y_soft"][np.arange(30), c0], 0.5)
    np.testing.assert_allclose(f["y_soft"][np.arange(30), c1], 0.5)
    meta = f["meta"]
    cfg = json.loads((AAE_UNIFORM / "config.json").read_text())
    assert meta["generator_checkpoint"]["sha256"] == cfg["weights_sha256"] and "lam" in meta["formula"]
    # the decoded image is the AAE's decoding of the midpoint of the two sources' codes
    from core.checkpoints import load_checkpoint
    from core.latent import decode_latents, encode_dataset

    model = load_checkpoint(AAE_UNIFORM, device="cpu").model
    z = encode_dataset(model, data.x[s[:3].ravel()]).reshape(3, 2, -1).mean(1)
    np.testing.assert_allclose(f["X"][:3], decode_latents(model, z)[:, 0].clamp(0, 1).numpy(), atol=1e-5)
    assert load_dataset(f"npz:{out}").x.shape == (30, 1, 28, 28)


def test_latent_method_without_checkpoint_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert main(["augment", "--dataset", "digits", "--shots", "2", "--method", "lsi", "--n", "3",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--checkpoint" in err and "aae-uniform" in err and not out.exists()
    assert main(["augment", "--dataset", "digits", "--shots", "2", "--method", "multi-vae", "--n", "3",
                 "--out", str(out)]) == 1
    assert "single generator checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(not AAE_UNIFORM.is_dir(), reason="shipped checkpoint missing")
def test_wrong_generator_kind_is_refused():
    with pytest.raises(ValueError, match="needs a checkpoint with {'kind': 'vae'}"):
        build_augmented("mnist5k", 1, "vae-interp", 2, checkpoint=AAE_UNIFORM)
    with pytest.raises(ValueError, match="expects inputs"):
        build_augmented("digits", 1, "lsi", 2, checkpoint=AAE_UNIFORM)


def test_class_names_survive_a_class_without_rows(tmp_path):
    aug = make_set(torch.rand(3, 1, 4, 4), torch.eye(3)[[0, 1, 1]], ["a", "b", "c"], meta={"method": "test"})
    back = load_dataset(f"npz:{aug.save(tmp_path / 'two.npz')}")
    assert back.class_names == ["a", "b", "c"] and back.n_classes == 3 and back.y.tolist() == [0, 1, 1]


def test_make_set_refuses_unlabelled_rows():
    with pytest.raises(ValueError, match="sum to 1"):
        make_set(torch.rand(2, 1, 4, 4), torch.zeros(2, 3), ["a", "b", "c"])


# ------------------------------------------------------------------------------------- page downloads (AppTest)

@pytest.fixture()
def deferred(monkeypatch) -> dict:
    """file id -> (file name, callable) of every deferred download button drawn (the bytes a click would get)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen, original = {}, MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        file_id = original(self, data_callable, mimetype, coordinates, file_name=file_name, **kw)
        seen[file_id] = (file_name, data_callable)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return seen


def _downloaded(at, key: str, deferred: dict, tmp_path) -> Path:
    """Run a download button's deferred callable the way a click does and save the bytes."""
    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    name, make = deferred[button.proto.deferred_file_id]
    path = tmp_path / name
    path.write_bytes(make())
    return path


def test_interpolation_sampler_download_round_trip(app_env, deferred, tmp_path):
    from app_support import assert_clean, new_app

    at = new_app("app_pages/interpolation.py")
    assert_clean(at)
    path = _downloaded(at, "w_s_download", deferred, tmp_path)
    f, back = read_export(path), load_dataset(f"npz:{path}")
    data = load_dataset("mnist5k")
    assert len(back) == 12 and back.class_names == data.class_names
    src = f["source_index"]
    np.testing.assert_array_equal(f["y"], data.y[src[:, 0]].numpy())            # labelled by the source's class
    assert (data.y[src[:, 1]] == data.y[src[:, 0]]).all()                        # kNN partner of the same class
    np.testing.assert_allclose(f["alpha"], 0.5)
    meta = f["meta"]
    assert meta["method"] == "knn-interpolate" and meta["params"]["k"] == 5
    cfg = json.loads((Path(app_env) / meta["generator_checkpoint"]["name"] / "config.json").read_text())
    assert meta["generator_checkpoint"]["sha256"] == cfg["weights_sha256"]
    # prior samples have no label: a note instead of a button
    at.selectbox(key="w_s_method").set_value("prior").run()
    assert_clean(at)
    assert not [b for b in at.get("download_button") if b.proto.id.endswith("w_s_download")]
    assert any("no class label" in c.value for c in at.caption)


def test_isda_draws_download(app_env, deferred, tmp_path):
    from app_support import assert_clean, new_app

    at = new_app("app_pages/isda.py")
    assert_clean(at)
    f = read_export(_downloaded(at, "w_isda_download", deferred, tmp_path))
    assert f["X"].shape[0] == 16 and len(set(f["source_index"][:, 0])) == 1 and (f["source_index"][:, 1] == -1).all()
    assert len(set(f["y"])) == 1 and f["meta"]["method"] == "isda-gaussian" and f["meta"]["params"]["lambda"] == 1.0
    assert "Sigma" in f["meta"]["formula"]


def test_exported_rows_are_what_the_cell_trains_on(tmp_path):
    """The export and the few-shot cell call one function (core.fewshot.cells.generate_rows) on the same shots
    with the same named stream: `python -m core augment` writes exactly the rows the lsi cell trains on, whether
    the generator comes as a checkpoint folder or with its run; distill's pool rows point at their data set rows."""
    from core.fewshot.cells import prepare_cell
    from core.fewshot.runner import run_experiment
    from core.fewshot.spec import Cell, ExperimentSpec

    run = tmp_path / "run"
    spec = ExperimentSpec(dataset="digits", shots=[3], seeds=2, methods=["lsi", "distill"], n_generated=[4],
                          device="cpu", generators={"aae-uniform": {"steps": 30}}, recipe={"steps": 40},
                          params={"distill": {"threshold": 0.1}})   # max prob >= 1/10: rows always
    run_experiment(spec, run)
    data = load_dataset("digits")
    lsi = prepare_cell(spec, Cell(1, 3, 4, "lsi"), run).generated
    generator = run / "generators" / "aae-uniform-pool-s1" / "model"
    out = tmp_path / "lsi.npz"
    assert main(["augment", "--dataset", "digits", "--shots", "3", "--seed", "1", "--method", "lsi", "--n", "4",
                 "--checkpoint", str(generator), "--only-generated", "--out", str(out)]) == 0
    for f in (read_export(out), build_augmented("digits", 3, "lsi", 4, seed=1, run=run, include_shots=False).arrays()):
        np.testing.assert_array_equal(f["X"], lsi.x[:, 0].numpy())
        np.testing.assert_array_equal(f["y_soft"], lsi.y_soft.numpy())
        np.testing.assert_allclose(f["lam"], 0.5)
    inputs = prepare_cell(spec, Cell(1, 3, 4, "lsi"), run)
    src = read_export(out)["source_index"]
    assert torch.equal(data.x[src[:, 0]], inputs.x_lab[lsi.source]) and torch.equal(data.x[src[:, 1]],
                                                                                    inputs.x_lab[lsi.partner])
    distill = prepare_cell(spec, Cell(0, 3, 4, "distill"), run).generated
    f = build_augmented("digits", 3, "distill", 4, seed=0, run=run, include_shots=False)
    assert distill.origin == "pool" and len(f) == len(distill) > 0
    np.testing.assert_array_equal(f.x, distill.x.numpy())
    np.testing.assert_array_equal(f.x, data.x[f.source_index[:, 0]].numpy())     # the pool rows themselves
