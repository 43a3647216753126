"""Real-browser test of the Attribute vectors page's t·v slider (the in-browser decoder, ui/components/latent_decoder).

Dragging t paints decode(z_i + t·v) with v = mean(z of class 7) − mean(z of class 1), and beside it the same move
along the first bootstrap vectors; each painted image equals torch's decode of core.attributes.apply_vector within
1e-3, and the drag sends the server nothing until t is let go (then the URL's attrt follows).
Same server fixture, skip and CI rules as tests/test_browser.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app_support import shipped_root
from test_browser import IDLE, _no_exception, _open, _settle, page, server  # noqa: F401 (fixtures)
from test_browser_decode import TOL, _drag_without_rerun, _FramesSent, _wait_live

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAME, INDEX = "mnist5k-aae-uniform-z16", 5


@pytest.fixture(scope="module")
def frames(page):  # noqa: F811 - registered before the first navigation so the socket is seen
    return _FramesSent(page)


def test_t_slider_decodes_apply_vector_in_the_browser(page, server, frames):  # noqa: F811
    if shipped_root() is None:
        pytest.skip("needs the shipped checkpoints (the stand-ins live in the server fixture's own folder)")
    from core.attributes import apply_vector, attribute_vector, bootstrap_vectors
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.latent import encode_dataset

    _open(page, f"{server}/attributes?ckpt=shipped/{NAME}&attr=7,1&i0={INDEX}&attrt=0")
    sha = _wait_live(page)
    # The page polls its worker jobs (bootstrap interval, analogy check) with timed fragment reruns: wait until
    # both have answered, so that any frame sent during the drag below can only come from the slider.
    page.get_by_text("Does the analogy work?").first.wait_for(timeout=240_000)
    page.get_by_text("in a worker process for the intervals").first.wait_for(state="detached", timeout=120_000)
    _settle(page)
    ckpt = load_checkpoint(shipped_root() / NAME, device="cpu")
    assert sha == ckpt.sha256
    root = page.locator(".ll-root").first
    root.scroll_into_view_if_needed()
    canvases = root.locator("canvas[data-kind='decoded']")
    assert canvases.count() == 5  # z + t·v and four bootstrap draws
    slider = root.locator("[data-testid='llDecoderSlider']")
    sent0 = _drag_without_rerun(page, slider, frames, 10, 0.035, "dragging t")  # from t = 0 of -2 .. 2
    t = float(slider.input_value())
    assert t >= 0.5

    ds = load_dataset("mnist5k")
    y_all = ds.y.numpy()
    z = encode_dataset(ckpt.model, ds.x).numpy()
    vectors = np.concatenate([attribute_vector(z, y_all == 7, y_all == 1)[None],
                              bootstrap_vectors(z, y_all == 7, y_all == 1, 4, seed=0)])  # (5, d)
    codes = np.stack([apply_vector(z[INDEX], v, t) for v in vectors])
    with torch.no_grad():
        want = ckpt.model.eval().decode(torch.as_tensor(codes, dtype=torch.float32)).numpy().reshape(len(codes), -1)
    got = np.asarray([c.evaluate("c => Array.from(c.__llDecoded)") for c in canvases.all()], np.float32)
    diff = float(np.abs(got - want).max())
    assert diff <= TOL, f"browser vs torch max |diff| = {diff:.2e} at t = {t}"
    assert float(np.abs(got[0] - got[1]).max()) > 0, "a bootstrap draw is another vector: its decode differs"

    page.mouse.up()
    page.wait_for_function(f"() => location.search.includes('attrt={t:g}')", timeout=30_000)
    _settle(page)
    assert len(frames) > sent0, "letting go must tell the server"
    _no_exception(page, "Attribute vectors after the t slider")
    assert page.locator(IDLE).count() == 1
