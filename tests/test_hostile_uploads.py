"""Uploads that weigh more than they look (issue 17, item 6): a decoder too large for the browser is not sent
(the page decodes on the server and says why), and the upload cache counts the weights as they lie in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401
from core.config import ModelConfig
from core.models import MODELS, build_model


def _meta_model(**fields):
    cfg = ModelConfig(kind="ae", input_shape=(1, 28, 28), latent_dim=16, arch="mlp", **fields)
    with torch.device("meta"):  # shapes only: parameter counts without memory
        return MODELS["ae"](cfg)


def test_a_decoder_over_the_cap_is_not_built_for_the_browser(monkeypatch):
    import core.webdecoder
    from ui.components import latent_decoder

    big = _meta_model(hidden=4096)
    n = sum(p.numel() for p in big.decoder.parameters())
    assert 16 * n // 3 > latent_decoder.MAX_SPEC_BYTES  # base64 of its float32 weights

    def never(model):
        raise AssertionError("the spec was built although its size was known to be over the cap")

    monkeypatch.setattr(core.webdecoder, "decoder_spec", never)
    why = latent_decoder.spec_or_reason(big)
    assert isinstance(why, str) and "more than the 8 MB sent to a browser" in why


def test_a_decoder_under_the_cap_is_sent_and_the_cap_bounds_what_is_built():
    from core.webdecoder import spec_bytes
    from ui.components import latent_decoder

    model = build_model(ModelConfig(kind="ae", input_shape=(1, 28, 28), latent_dim=4, hidden=64))
    spec = latent_decoder.spec_or_reason(model)
    assert isinstance(spec, dict) and spec_bytes(spec) <= latent_decoder.MAX_SPEC_BYTES
    why = latent_decoder.spec_or_reason(model, max_bytes=spec_bytes(spec) - 1)
    assert isinstance(why, str) and "sent to a browser" in why


def test_the_page_decodes_on_the_server_and_says_why(app_env, monkeypatch):
    """Interpolation with a cap below the shipped decoders: no spec reaches the browser; a caption says why."""
    from ui.components import latent_decoder

    mounted = []
    monkeypatch.setattr(latent_decoder, "MAX_SPEC_BYTES", 1024)
    monkeypatch.setattr(latent_decoder, "_mount", lambda **kw: mounted.append(kw["data"]))
    at = new_app("app_pages/interpolation.py")
    assert_clean(at)
    assert not [d for d in mounted if d.get("spec") is not None], "a decoder spec over the cap was sent"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Decoding on the server: its decoder weighs") and "sent to a browser" in c
               for c in captions), captions
    assert any(s.key == "w_lam" for s in at.slider), "the server's slider is drawn instead"


def _zipped_zero_model(tmp_path: Path, i: int) -> bytes:
    """A checkpoint zip of a few KB holding ~2.1 MB of (zero) weights."""
    from core.checkpoints import save_checkpoint, zip_checkpoint

    model = build_model(ModelConfig(kind="ae", input_shape=(512,), latent_dim=2, hidden=512))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        next(model.parameters())[0, 0] = float(i)  # distinct bytes, distinct sha
    return zip_checkpoint(save_checkpoint(tmp_path / f"z{i}", model, dataset_id="probe", class_names=["a", "b"]))


def test_the_upload_cache_counts_unpacked_weights(tmp_path, monkeypatch):
    import streamlit as st

    from ui import resources

    blobs = [_zipped_zero_model(tmp_path, i) for i in range(4)]
    weights = sum(p.numel() * 4 for p in build_model(ModelConfig(kind="ae", input_shape=(512,), latent_dim=2,
                                                                  hidden=512)).state_dict().values())
    assert max(map(len, blobs)) * 50 < weights  # compressed, they look 50x smaller than they are
    resources._upload_registry.clear()
    monkeypatch.setattr(resources, "MAX_UPLOAD_TOTAL_BYTES", int(2.5 * weights))
    st.session_state["_ll_uploads"] = []
    keys = [resources.register_upload(b) for b in blobs]
    reg = resources._upload_registry()
    assert reg.nbytes >= len(reg) * weights, "each entry counts its unpacked weights"
    assert len(reg) == 2 and reg.nbytes <= resources.MAX_UPLOAD_TOTAL_BYTES and keys[-1] in reg
    resources._upload_registry.clear()
