"""Shared fixtures: small real data sets, the real MNIST test set when present, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))


@pytest.fixture(scope="session")
def digits():
    from core.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist_test_dir() -> Path:
    folder = SHARED_DATA / "mnist-test"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the real MNIST test set is not at {folder} (developers and CI have it; users need not)")
    return folder


@pytest.fixture
def tiny_model():
    """Factory: tiny_model(kind, prior="gaussian", input_shape=(1, 8, 8), latent_dim=2) -> model in eval mode."""
    from core.config import ModelConfig
    from core.models import build_model

    def make(kind: str, prior: str = "gaussian", input_shape=(1, 8, 8), latent_dim: int = 2, **kw):
        torch.manual_seed(0)
        return build_model(ModelConfig(kind=kind, prior=prior, input_shape=input_shape, latent_dim=latent_dim,
                                       hidden=64, **kw)).eval()

    return make
