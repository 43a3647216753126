"""`python -m core`: train -> info -> embed, as a user would chain them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from core.__main__ import main
from core.checkpoints import load_checkpoint


def test_train_info_embed_chain(tmp_path, digits, capsys):
    out = tmp_path / "digits-aae"
    assert main(["train", "--dataset", "digits", "--model", "aae", "--prior", "uniform", "--latent-dim", "2",
                 "--epochs", "1", "--hidden", "64", "--out", str(out)]) == 0
    ckpt = load_checkpoint(out, device="cpu")
    assert ckpt.model.prior == "uniform" and ckpt.meta["dataset"] == "digits"
    assert ckpt.meta["metrics"]["recon_mse"] > 0 and ckpt.meta["history"]["epoch"] == [1]
    assert main(["embed", str(out), "--out", str(tmp_path / "z.npz")]) == 0
    saved = np.load(tmp_path / "z.npz")
    with torch.no_grad():
        expected = ckpt.model.encode(digits.x).numpy()
    np.testing.assert_array_equal(saved["z"], expected)
    np.testing.assert_array_equal(saved["y"], digits.y.numpy())


def test_embed_refuses_a_dataset_of_another_shape(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", "--dataset", "wine", "--model", "ae", "--latent-dim", "2", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert main(["embed", str(out), "--dataset", "digits", "--out", str(tmp_path / "z.npz")]) == 1
    assert "same shape" in capsys.readouterr().err


def test_a_kinds_own_flags_reach_its_checkpoint(tmp_path, capsys):
    """--lambda-mmd exists because the WAE's config has the field; info prints every setting of the kind."""
    out = tmp_path / "wae"
    assert main(["train", "--dataset", "wine", "--model", "wae", "--lambda-mmd", "3", "--latent-dim", "2",
                 "--epochs", "1", "--hidden", "16", "--out", str(out)]) == 0
    ckpt = load_checkpoint(out, device="cpu")
    assert ckpt.meta["model"] == {"kind": "wae", "input_shape": [13], "latent_dim": 2, "hidden": 16, "arch": "auto",
                                  "lambda_mmd": 3.0}
    assert "mmd" in ckpt.meta["history"]
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "wae prior=gaussian" in capsys.readouterr().out
    assert main(["train", "--dataset", "wine", "--model", "ae", "--beta", "2", "--out", str(tmp_path / "x")]) == 1
    assert "--beta is a setting of vae" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_unknown_dataset_is_one_clear_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "core", "train", "--dataset", "nope", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "unknown dataset 'nope'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_train_seed_controls_the_initial_weights(tmp_path):
    """Same --seed -> the same trained weights (initial weights, batch order, noise); another seed -> others.
    A second run happens while the global RNG has been used differently, which must not matter."""
    def weights(name, seed):
        out = tmp_path / name
        assert main(["train", "--dataset", "wine", "--model", "vae", "--latent-dim", "2", "--epochs", "1",
                     "--hidden", "16", "--seed", str(seed), "--device", "cpu", "--out", str(out)]) == 0
        return load_checkpoint(out, device="cpu").meta["weights_sha256"]

    first = weights("a", 3)
    torch.rand(1000)                                           # disturb the global RNG
    assert weights("b", 3) == first
    assert weights("c", 4) != first


def test_build_model_seed_is_explicit_and_thread_safe():
    import threading

    from core.config import ModelConfig
    from core.models import build_model

    cfg = ModelConfig(kind="aae", prior="uniform", input_shape=(1, 28, 28), latent_dim=4)
    ref = {k: v.clone() for k, v in build_model(cfg, seed=7).state_dict().items()}
    stop = threading.Event()
    t = threading.Thread(target=lambda: [torch.randn(100) for _ in iter(stop.is_set, True)])
    t.start()
    try:
        again = build_model(cfg, seed=7).state_dict()
    finally:
        stop.set()
        t.join()
    assert all(torch.equal(ref[k], again[k]) for k in ref)
    other = build_model(cfg, seed=8).state_dict()
    assert not torch.equal(ref["encoder.head.0.weight"], other["encoder.head.0.weight"])
