"""Shared set-up for the AppTest page tests (tests/test_app_*.py).

`app_env` points the app at a checkpoint root and a scratch runs folder:
- the shipped checkpoints/mnist5k-* when they exist (the real defaults), else
- tiny stand-ins with the same names, trained for one epoch on 600 MNIST-5k images (~1 s each).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60  # AppTest's default is 3 s; the first torch import / encode costs more
NAMES = {  # shipped name -> (kind, prior, latent_dim)
    "mnist5k-aae-uniform-z2": ("aae", "uniform", 2),
    "mnist5k-aae-gaussian-z2": ("aae", "gaussian", 2),
    "mnist5k-ae-z2": ("ae", "none", 2),
    "mnist5k-vae-z2": ("vae", "gaussian", 2),
    "mnist5k-aae-uniform-z16": ("aae", "uniform", 16),
}


def shipped_root() -> Path | None:
    root = ROOT / "checkpoints"
    ok = all((root / n / "model.safetensors").is_file() for n in NAMES)
    return root if ok else None


def train_stand_ins(out: Path, names=NAMES) -> Path:
    import torch

    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit

    torch.set_num_threads(1)
    ds = load_dataset("mnist5k")
    small = ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:600])
    for name, (kind, prior, d) in names.items():
        model = build_model(ModelConfig(kind=kind, input_shape=ds.input_shape, latent_dim=d, prior=prior, hidden=128))
        tcfg = TrainConfig(epochs=1, batch_size=64, seed=0)
        hist = fit(model, small, tcfg)
        save_checkpoint(out / name, model, train_config=tcfg, dataset_id="mnist5k",
                        class_names=list(ds.class_names), metrics={"recon_mse": 0.1}, history=hist)
    return out


@pytest.fixture(scope="session")
def app_checkpoints(tmp_path_factory) -> Path:
    return shipped_root() or train_stand_ins(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture()
def app_env(app_checkpoints, tmp_path, monkeypatch):
    """Environment for one AppTest: checkpoint root + empty runs folder; caches cleared."""
    import streamlit as st

    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(app_checkpoints))
    monkeypatch.setenv("LATENT_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LATENT_LAB_WARM_UMAP", "0")  # tests never pay UMAP's minute of JIT
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    st.cache_data.clear()
    yield app_checkpoints
    from ui.background import wait_all

    wait_all(120)  # a torch thread still running at interpreter exit aborts the process


def new_app(page: str | None = None, query: dict | None = None):
    """AppTest of the whole app (router + home), optionally switched to `page` and run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def assert_clean(at) -> None:
    """No exception element and no st.error on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def rerun_until(at, cond, seconds: float = 90, clean: bool = False) -> None:
    """Rerun the page every 0.5 s until cond() holds (a background job has finished), failing at once on an
    exception (clean=True: on an st.error too, e.g. a job that failed), and at the end if it never held."""
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(0.5)
        at.run()
        if clean:
            assert_clean(at)
        else:
            assert not at.exception, [e.value for e in at.exception]
    assert cond()


def sidebar_ckpt(at):
    """The sidebar's checkpoint picker (its key is per page: w_ckpt_<page>)."""
    return next(w for w in at.sidebar.selectbox if str(w.key).startswith("w_ckpt_"))


def sidebar_dataset(at):
    return next(w for w in at.sidebar.selectbox if str(w.key).startswith("w_dataset_"))
