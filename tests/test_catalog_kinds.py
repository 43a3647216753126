"""The catalog reads the registries (datasets, model kinds) and still draws the home page without torch."""

from __future__ import annotations

import subprocess
import sys

from app_support import ROOT


def test_catalog_lists_the_dataset_registry_without_importing_torch():
    code = ("import sys; from ui import catalog; import core.data;"
            "assert list(catalog.DATASETS) == core.data.list_datasets(), catalog.DATASETS;"
            "e = catalog.CheckpointEntry('shipped/x', 'x', None, {'model': {'kind': 'wae', 'latent_dim': 2}});"
            "assert e.label.startswith('x  ·  WAE, z=2'), e.label;"
            "bad = [m for m in ('torch', 'core.models') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_descriptions_and_settings_come_from_each_kinds_config():
    from core.config import ModelConfig
    from core.models import list_models
    from ui import catalog

    for kind in list_models():
        saved = ModelConfig(kind=kind, latent_dim=2).to_dict()
        assert catalog.describe_model(saved) == ModelConfig.from_dict(saved).describe()
    flat = {"input_shape": [1, 28, 28], "latent_dim": 2, "hidden": 256, "arch": "auto", "beta_norm": False}
    assert catalog.describe_model({**flat, "kind": "aae", "prior": "uniform", "beta": 1.0}) == "AAE · uniform prior"
    assert catalog.describe_model({**flat, "kind": "vae", "prior": "gaussian", "beta": 4.0}) == "beta-VAE (beta=4)"
    assert catalog.describe_model({"kind": "gan", "latent_dim": 2}) == "GAN (unknown kind)"
    # beta is a VAE setting: a legacy AAE dict's beta (stored, never read) does not make it a beta map candidate
    aae = catalog.CheckpointEntry("shipped/a", "a", None, {"dataset": "d", "model": {**flat, "kind": "aae", "prior": "none", "beta": 1.0}})
    vae = catalog.CheckpointEntry("shipped/v", "v", None, {"dataset": "d", "model": {**flat, "kind": "vae", "prior": "gaussian", "beta": 4.0}})
    assert aae.beta is None and vae.beta == 4.0
    assert catalog.beta_vaes([aae, vae], "d") == [vae]


def test_the_wae_joins_the_hole_comparison():
    from ui import catalog

    assert "mnist5k-wae-z2" in catalog.HOLE_SET and (ROOT / "checkpoints" / "mnist5k-wae-z2" / "config.json").is_file()
