"""Checkpoint folders: exact round trip, atomic writes, and a named error for every kind of damage."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

import core.checkpoints as ck
from core.checkpoints import (CheckpointError, list_checkpoints, load_checkpoint, load_checkpoint_zip,
                              save_checkpoint, zip_checkpoint)
from core.config import TrainConfig

SHIPPED = [f"mnist5k-{m}-z{d}" for d in (2, 16) for m in ("ae", "aae-gaussian", "aae-uniform", "vae")] + \
    ["mnist5k-wae-z2"]
# Measured before model kinds were open (one flat ModelConfig for every kind), on the first 256 mnist5k images:
# name -> (z of image 0, sum |z| over the 256, sum of decode(z) over the first 8, parameter count).
LEGACY_LATENTS = {
    "mnist5k-aae-gaussian-z16": ([-0.0411, -0.9386, 0.0175, -0.1848, 0.5169, -0.1911, -0.5044, -0.213, -1.646, 0.7828, -0.7528, 0.5518, -0.0181, -0.9863, -1.1663, 0.2737], 3238.703, 1123.395, 258738),
    "mnist5k-aae-gaussian-z2": ([0.1856, -3.2693], 947.927, 1049.667, 251556),
    "mnist5k-aae-uniform-z16": ([0.0161, 0.4898, -0.1985, 0.22, -0.6002, -0.7068, 0.2274, 0.4638, 0.7674, -0.4794, -0.6578, 0.5917, 0.642, 0.2126, -0.8217, -0.6843], 1987.208, 1204.528, 258738),
    "mnist5k-aae-uniform-z2": ([-0.2717, 0.9614], 346.34, 1124.454, 251556),
    "mnist5k-ae-z16": ([0.3292, 2.1328, -9.5057, -25.212, -7.6457, 19.125, -1.112, -26.5953, -14.8273, -2.2758, -43.292, -8.786, 5.6061, -2.6689, -4.4272, -19.699], 59292.609, 1158.313, 188337),
    "mnist5k-ae-z2": ([6.0933, 0.0227], 1777.478, 1117.145, 184739),
    "mnist5k-vae-beta0.5-z2": ([2.3792, -1.573], 898.161, 1087.56, 184997),
    "mnist5k-vae-beta16-z2": ([-1.3856, -1.5514], 624.291, 1135.173, 184997),
    "mnist5k-vae-beta4-z2": ([1.3182, 1.6347], 683.838, 1101.886, 184997),
    "mnist5k-vae-z16": ([0.273, -0.2781, 0.2817, 0.2855, 0.8101, -0.6121, -1.3252, 1.602, -1.1956, -0.0666, -0.0411, 0.0218, 0.7824, -0.1627, 0.3144, 0.1219], 2779.678, 1115.056, 190401),
    "mnist5k-vae-z2": ([-2.2464, 0.9881], 789.525, 1126.287, 184997),
}


@pytest.fixture
def saved(tmp_path, tiny_model, digits):
    model = tiny_model("aae", "uniform")
    path = save_checkpoint(tmp_path / "ck", model, train_config=TrainConfig(epochs=1), dataset_id="digits",
                           class_names=digits.class_names, metrics={"recon_mse": 0.1}, history={"recon": [0.2]})
    return path, model


@pytest.mark.parametrize("kind, prior", [("vae", "gaussian"), ("aae", "uniform"), ("aae", "gaussian"), ("ae", "none")])
def test_round_trip_reproduces_latents_exactly(tmp_path, tiny_model, digits, kind, prior):
    model = tiny_model(kind, prior)
    save_checkpoint(tmp_path / kind, model, dataset_id="digits", class_names=digits.class_names)
    loaded = load_checkpoint(tmp_path / kind, device="cpu")
    assert torch.equal(loaded.model.encode(digits.x), model.encode(digits.x))
    assert loaded.meta["model"] == model.config.to_dict() | {"input_shape": [1, 8, 8]}
    assert loaded.meta["class_names"] == digits.class_names and not loaded.model.training


def test_meta_records_what_a_user_needs(saved):
    path, _ = saved
    meta = json.loads((path / "config.json").read_text())
    for key in ("model", "train", "dataset", "class_names", "metrics", "history", "versions", "created", "weights_sha256"):
        assert key in meta
    assert meta["versions"]["torch"] == torch.__version__ and meta["train"]["epochs"] == 1


def test_zip_round_trip_in_memory(saved, digits):
    path, model = saved
    loaded = load_checkpoint_zip(zip_checkpoint(path), device="cpu")
    assert loaded.path is None and loaded.sha256 == load_checkpoint(path).sha256
    assert torch.equal(loaded.model.encode(digits.x[:20]), model.encode(digits.x[:20]))


def _damage(path: Path, how: str):
    cfg, w = path / "config.json", path / "model.safetensors"
    if how == "missing-folder":
        return path.parent / "nope"
    if how == "no-config":
        cfg.unlink()
    elif how == "no-weights":
        w.unlink()
    elif how == "truncated":
        w.write_bytes(w.read_bytes()[:1000])
    elif how == "tampered-weights":
        data = bytearray(w.read_bytes())
        data[-10] ^= 0xFF
        w.write_bytes(bytes(data))
    elif how == "bad-json":
        cfg.write_text("{not json")
    elif how == "mismatched-model":
        meta = json.loads(cfg.read_text())
        meta["model"]["latent_dim"] = 5
        cfg.write_text(json.dumps(meta))
    elif how == "invalid-model":
        meta = json.loads(cfg.read_text())
        meta["model"]["kind"] = "gan"
        cfg.write_text(json.dumps(meta))
    elif how == "huge-model":  # a crafted config must not allocate gigabytes or crash inside torch
        meta = json.loads(cfg.read_text())
        meta["model"]["hidden"] = 10**8
        cfg.write_text(json.dumps(meta))
    elif how == "negative-size":
        meta = json.loads(cfg.read_text())
        meta["model"]["hidden"] = -4
        cfg.write_text(json.dumps(meta))
    elif how == "not-ours":
        cfg.write_text(json.dumps({"hello": 1}))
    elif how == "pickle-weights":  # a pickle posing as weights must never be unpickled
        payload = pickle.dumps({"x": 1})
        w.write_bytes(payload)
        meta = json.loads(cfg.read_text())
        meta["weights_sha256"] = __import__("hashlib").sha256(payload).hexdigest()
        cfg.write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("how, message", [
    ("missing-folder", "no such checkpoint folder"), ("no-config", "config.json is missing"),
    ("no-weights", "model.safetensors is missing"), ("truncated", "truncated or were modified"),
    ("tampered-weights", "truncated or were modified"), ("bad-json", "not valid JSON"),
    ("mismatched-model", "do not match the model"), ("invalid-model", "model config is invalid"),
    ("huge-model", "hidden must be in"), ("negative-size", "hidden must be in"),
    ("not-ours", "written by Latent Lab"), ("pickle-weights", "not a readable safetensors"),
])
def test_damaged_checkpoints_are_named(saved, how, message):
    path, _ = saved
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(_damage(path, how))


def test_cli_info_exits_nonzero_with_one_line_reason(saved, capsys):
    from core.__main__ import main

    path, _ = saved
    assert main(["info", str(path)]) == 0
    assert "aae prior=uniform" in capsys.readouterr().out
    _damage(path, "truncated")
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "truncated" in err


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_bad_uploads_are_named(saved, monkeypatch):
    path, _ = saved
    good = {f"x/{n}": (path / n).read_bytes() for n in ("config.json", "model.safetensors")}
    with pytest.raises(CheckpointError, match="not a zip"):
        load_checkpoint_zip(b"hello")
    with pytest.raises(CheckpointError, match="lacks model.safetensors"):
        load_checkpoint_zip(_zip({"x/config.json": good["x/config.json"]}))
    with pytest.raises(CheckpointError, match="more than one"):
        load_checkpoint_zip(_zip({**good, "y/config.json": good["x/config.json"]}))
    monkeypatch.setattr(ck, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(CheckpointError, match="unpacks to more than"):
        load_checkpoint_zip(_zip(good))


def test_failed_save_keeps_the_previous_checkpoint(saved, tiny_model, monkeypatch):
    path, model = saved
    before = (path / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_model("aae", "uniform", latent_dim=3))
    assert (path / "model.safetensors").read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["ck"]  # no temp folder left behind
    load_checkpoint(path)


def test_list_checkpoints_skips_damaged(saved, tiny_model):
    path, _ = saved
    (path.parent / "broken").mkdir()
    (path.parent / "broken" / "config.json").write_text("{")
    (path.parent / "broken" / "model.safetensors").write_bytes(b"")
    assert [c.name for c in list_checkpoints(path.parent)] == ["ck"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reconstructs_with_recorded_error(name):
    from core.data import load_dataset
    from core.train import reconstruction_error

    ckpt = load_checkpoint(ck.DEFAULT_CHECKPOINT_DIR / name, device="cpu")
    data = load_dataset(ckpt.meta["dataset"])
    assert ckpt.meta["dataset"] == "mnist5k" and ckpt.model.latent_dim == int(name.rsplit("z", 1)[1])
    err = reconstruction_error(ckpt.model, data.x)
    assert err == pytest.approx(ckpt.meta["metrics"]["recon_mse"], rel=1e-4)
    assert err < 0.06  # a real reconstruction, not a mean image (the per-pixel variance of MNIST is ~0.095)


@pytest.mark.parametrize("name", sorted(LEGACY_LATENTS))
def test_flat_legacy_configs_load_to_the_same_model_and_latents(name):
    """The shipped checkpoints store the flat ModelConfig dict of before; loading them through the kinds'
    own configs must give the same network and the same codes as then."""
    from core.data import load_dataset

    meta = json.loads((ck.DEFAULT_CHECKPOINT_DIR / name / "config.json").read_text())
    assert {"prior", "beta", "beta_norm"} <= set(meta["model"])  # really the old flat format
    ckpt = load_checkpoint(ck.DEFAULT_CHECKPOINT_DIR / name, device="cpu")
    z0, abs_sum, xh_sum, n_params = LEGACY_LATENTS[name]
    x = load_dataset("mnist5k").x[:256]
    with torch.no_grad():
        z = ckpt.model.encode(x)
        x_hat = ckpt.model.decode(z[:8])
    assert type(ckpt.model.config).kind == meta["model"]["kind"] == ckpt.model.config.kind
    assert ckpt.model.config.prior == meta["model"]["prior"]
    assert sum(p.numel() for p in ckpt.model.parameters()) == n_params
    assert z[0].tolist() == pytest.approx(z0, rel=1e-4, abs=2e-4)
    assert float(z.abs().sum()) == pytest.approx(abs_sum, rel=1e-5)
    assert float(x_hat.sum()) == pytest.approx(xh_sum, rel=1e-5)


@pytest.mark.parametrize("kind", __import__("core.models", fromlist=["list_models"]).list_models())
def test_every_kind_round_trips_through_a_checkpoint(tmp_path, digits, kind):
    from core.config import ModelConfig
    from core.models import build_model

    model = build_model(ModelConfig(kind=kind, input_shape=(1, 8, 8), latent_dim=2, hidden=32), seed=1).eval()
    save_checkpoint(tmp_path / kind, model, dataset_id="digits", class_names=digits.class_names)
    loaded = load_checkpoint(tmp_path / kind, device="cpu")
    assert type(loaded.model) is type(model) and loaded.model.config == model.config
    assert torch.equal(loaded.model.encode(digits.x), model.encode(digits.x))


def test_shipped_checkpoints_are_small():
    total = sum(f.stat().st_size for f in ck.DEFAULT_CHECKPOINT_DIR.rglob("*") if f.is_file())
    assert total < 12 * 1024 * 1024
