"""Hot path and memory: the checkpoint scan is cached (a rerun reads no config.json), and every cache
stays under its bound after many distinct inputs (uploads, weight hashes, datasets, hole classifiers,
background jobs, st.cache_* decorators, the projection files on disk)."""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401
from ui import catalog

ROOT = Path(__file__).resolve().parent.parent
OLD = time.time() - 3600  # an mtime an hour ago: a settled folder


def _fake_checkpoint(folder: Path, name: str, latent_dim: int = 2) -> None:
    d = folder / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model": {"kind": "ae", "latent_dim": latent_dim}, "dataset": "digits"}))
    (d / "model.safetensors").write_bytes(b"not read by the scan")


@pytest.fixture()
def reads(monkeypatch):
    """Counts config.json reads by the catalog scan."""
    count = {"n": 0}
    real = catalog._read_meta

    def counting(folder):
        count["n"] += 1
        return real(folder)

    monkeypatch.setattr(catalog, "_read_meta", counting)
    catalog.invalidate()
    yield count
    catalog.invalidate()


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    for name in ("a", "b", "c"):
        _fake_checkpoint(shipped, name)
    os.utime(shipped, (OLD, OLD))
    monkeypatch.setenv(catalog.CHECKPOINTS_ENV, str(shipped))
    monkeypatch.setenv(catalog.RUNS_ENV, str(tmp_path / "runs"))
    return shipped, tmp_path / "runs" / "checkpoints"


# ----------------------------------------------------------------------------- the scan


def test_second_scan_reads_no_config_file(roots, reads):
    first = catalog.scan()
    assert [e.key for e in first] == ["shipped/a", "shipped/b", "shipped/c"] and reads["n"] == 3
    for _ in range(5):
        assert [e.key for e in catalog.scan()] == [e.key for e in first]
    assert reads["n"] == 3


def test_a_saved_checkpoint_shows_up_at_once(roots, reads):
    shipped, user = roots
    catalog.scan()
    _fake_checkpoint(user, "mine")  # what save_checkpoint does: a folder renamed into the runs root
    assert "runs/mine" in [e.key for e in catalog.scan()]
    _fake_checkpoint(shipped, "d")
    assert "shipped/d" in [e.key for e in catalog.scan()]


def test_invalidate_and_ttl_force_a_rescan(roots, reads, monkeypatch):
    catalog.scan()
    catalog.invalidate()
    catalog.scan()
    assert reads["n"] == 6
    monkeypatch.setattr(catalog, "SCAN_TTL_S", 0.0)
    catalog.scan()
    assert reads["n"] == 9


def test_uploads_are_added_to_a_copy_not_to_the_cache(roots, reads):
    with_upload = catalog.scan({"upload/abc123": {"model": {"kind": "vae", "latent_dim": 2}}})
    assert with_upload[-1].key == "upload/abc123"
    assert "upload/abc123" not in [e.key for e in catalog.scan()]


def test_a_page_rerun_reads_no_config_file(app_env, reads):
    at = new_app("app_pages/beta_dims.py")
    assert_clean(at)
    reads["n"] = 0
    at.select_slider(key="w_beta_steps").set_value(5).run()
    assert_clean(at)
    at.switch_page("app_pages/interpolation.py").run()  # another page, same session: no scan either
    assert_clean(at)
    assert reads["n"] == 0


# ----------------------------------------------------------------------------- bounded memos


def test_lru_stays_under_entries_and_bytes():
    from ui.lru import Lru

    cache = Lru(max_entries=5, max_bytes=1000, size=len)
    for i in range(100):
        cache.put(i, b"x" * (i % 7 * 60))
        assert len(cache) <= 5 and (cache.nbytes <= 1000 or len(cache) == 1)
    assert 99 in cache  # the newest is always kept
    cache.put("huge", b"x" * 5000)
    assert cache.keys() == ["huge"]  # alone over the byte budget: kept, everything else out
    assert cache.get_or_create("k", lambda: b"abc") == b"abc" and cache.get_or_create("k", lambda: 1 / 0) == b"abc"


def test_weight_hash_memo_is_bounded(tmp_path, monkeypatch):
    from ui import resources
    from ui.lru import Lru

    monkeypatch.setattr(resources, "_sha_memo", Lru(resources.MAX_SHA_MEMO))
    for i in range(resources.MAX_SHA_MEMO + 40):
        d = tmp_path / f"c{i}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(str(i).encode())
        assert len(resources.weights_sha256(str(d))) == 64
    assert len(resources._sha_memo) == resources.MAX_SHA_MEMO


def _zipped_checkpoint(tmp_path: Path, i: int) -> bytes:
    from core.checkpoints import save_checkpoint, zip_checkpoint
    from core.config import ModelConfig
    from core.models import build_model

    model = build_model(ModelConfig(kind="ae", input_shape=(8,), latent_dim=2, prior="none", hidden=4))
    with torch.no_grad():
        next(model.parameters()).fill_(float(i))  # distinct bytes, distinct sha
    return zip_checkpoint(save_checkpoint(tmp_path / f"up{i}", model, dataset_id="wine", class_names=["a", "b", "c"]))


def test_uploads_are_bounded_by_count_and_bytes(tmp_path, monkeypatch):
    import streamlit as st

    from ui import resources

    resources._upload_registry.clear()
    monkeypatch.setattr(resources, "MAX_UPLOADS", 5)
    blobs = [_zipped_checkpoint(tmp_path, i) for i in range(12)]
    monkeypatch.setattr(resources, "MAX_UPLOAD_TOTAL_BYTES", 3 * max(map(len, blobs)))
    st.session_state["_ll_uploads"] = []
    keys = [resources.register_upload(b) for b in blobs]
    reg = resources._upload_registry()
    assert len(set(keys)) == 12
    assert len(reg) <= 3 and reg.nbytes <= resources.MAX_UPLOAD_TOTAL_BYTES
    assert keys[-1] in reg and keys[0] not in reg
    assert set(resources.upload_metas()) == set(reg.keys())  # the session's list forgets evicted uploads
    assert len(st.session_state["_ll_uploads"]) <= 5
    resources._upload_registry.clear()


def test_loaded_datasets_are_bounded_by_count_and_bytes(monkeypatch):
    from core.data import Dataset
    from ui import resources

    def fake(spec: str):
        n = int(spec.split("-")[1])
        return Dataset(spec, torch.zeros(n, 100), torch.zeros(n, dtype=torch.long), ["a"])

    resources._datasets.clear()
    monkeypatch.setattr(resources, "MAX_DATASET_BYTES", 400 * 100 * 4)
    monkeypatch.setattr(resources, "_load_dataset", fake)
    for i in range(30):
        ds = resources.dataset(f"fake-{50 + i * 7}")
        assert resources.dataset(f"fake-{50 + i * 7}") is ds  # a second ask is the same object
    reg = resources._datasets()
    assert 1 <= len(reg) <= resources.MAX_DATASETS and reg.nbytes <= resources.MAX_DATASET_BYTES
    resources._datasets.clear()


def test_hole_classifiers_are_bounded_and_keyed_by_content():
    from core import holes
    from core.data import Dataset

    g = torch.Generator().manual_seed(0)
    sets = [Dataset(f"d{i}", torch.rand(60, 5, generator=g), torch.arange(60) % 3, ["a", "b", "c"]) for i in range(7)]
    for ds in sets:
        holes.real_data_classifier(ds, max_train=60)
        assert len(holes._CLASSIFIERS) <= holes.MAX_CLASSIFIERS
    same = holes.data_fingerprint(sets[0])
    assert holes.data_fingerprint(Dataset("d0", sets[0].x.clone(), sets[0].y.clone(), ["a", "b", "c"])) == same
    changed = sets[0].x.clone()
    changed[0, 0] += 1.0  # a file behind the same id changed
    assert holes.data_fingerprint(Dataset("d0", changed, sets[0].y, ["a", "b", "c"])) != same


def test_background_registry_keeps_at_most_max_jobs_finished(monkeypatch):
    from core.executor import get_executor, probe
    from ui import background, jobs

    background._registry.clear()
    monkeypatch.setattr(background, "MAX_JOBS", 8)
    monkeypatch.setattr(jobs, "_executor", get_executor("inline"))
    for i in range(40):
        first = background.submit("test", (i,), probe.sleep, {"seconds": 0, "value": i})
        assert background.submit("test", (i,), probe.sleep, {"seconds": 0, "value": i}) is first  # one job per key
        assert background.wait_all(10)
    reg, _ = background._registry()
    assert len(reg) <= 8
    assert background.peek("test", (39,)).result() == 39
    background._registry.clear()


def test_every_streamlit_cache_has_max_entries():
    """A st.cache_data / st.cache_resource without max_entries grows with every distinct input."""
    unbounded = []
    for path in list((ROOT / "ui").rglob("*.py")) + list((ROOT / "app_pages").glob("*.py")) + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
                    kwargs = {k.arg for k in dec.keywords} if isinstance(dec, ast.Call) else set()
                    if "max_entries" not in kwargs:
                        unbounded.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not unbounded, unbounded


# ----------------------------------------------------------------------------- projection files on disk


def _cache_file(folder: Path, name: str, size: int, age_s: float) -> Path:
    p = folder / f"{name}.npz"
    p.write_bytes(b"0" * size)
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def test_projection_cache_prunes_least_recently_used_beyond_the_size(tmp_path):
    from core.projection import prune_cache

    files = [_cache_file(tmp_path, f"m{i}", 1000, age_s=100 * i) for i in range(10)]  # m0 newest
    deleted = prune_cache(tmp_path, max_bytes=4500, max_age_s=1e9)
    assert sorted(deleted) == sorted(files[4:])
    assert sorted(tmp_path.glob("*.npz")) == sorted(files[:4])


def test_projection_cache_prunes_by_age_but_keeps_the_new_file(tmp_path):
    from core.projection import prune_cache

    fresh = _cache_file(tmp_path, "fresh", 10, age_s=10)
    old = _cache_file(tmp_path, "old", 10, age_s=40 * 86400)
    kept = _cache_file(tmp_path, "kept", 10_000, age_s=50 * 86400)
    writing = _cache_file(tmp_path, ".x.123.tmp", 10, age_s=60)  # another writer's file in progress
    crashed = _cache_file(tmp_path, ".y.456.tmp", 10, age_s=7200)
    deleted = prune_cache(tmp_path, max_bytes=100, max_age_s=30 * 86400, keep=kept)
    assert set(deleted) == {old, crashed}
    assert fresh.exists() and kept.exists() and writing.exists()


def test_project_cached_prunes_and_a_hit_counts_as_use(tmp_path, monkeypatch):
    from core import projection

    z = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    first = projection.project_cached(z, "a", "pca", tmp_path)
    path = projection.projection_cache_path(z, "a", "pca", tmp_path)
    t = time.time() - 1000
    os.utime(path, (t, t))
    np.testing.assert_array_equal(projection.project_cached(z, "a", "pca", tmp_path), first)
    assert path.stat().st_mtime > t + 900  # a read refreshed its age
    monkeypatch.setattr(projection, "CACHE_MAX_BYTES", path.stat().st_size + 1)
    for k in range(5):
        projection.project_cached(z, f"k{k}", "pca", tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # only the newest fits
