"""Real-browser tests of the in-browser decoder (ui/components/latent_decoder.*).

- For every shipped checkpoint, the browser's decode of the same codes equals torch's decode
  (max absolute pixel difference <= 1e-3), through the app itself: the page sends the spec, the browser
  keeps it, and the test hook `window.latentLab.decode(sha256, codes)` runs the same JS as the slider.
- Dragging the in-browser slider repaints the canvas and sends the server nothing (no websocket frame,
  so no rerun); letting go sends the value once and the URL's lambda follows.
- The Beta & dimensions page's offset slider repaints one decoded image per traversal row, each equal to
  torch's decode of z0 + t * sigma_d * e_d, without a server rerun during the drag.
Same server fixture, skip and CI rules as tests/test_browser.py (whose fixtures are reused here).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from app_support import shipped_root
from test_browser import IDLE, _no_exception, _open, _settle, page, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LIVE = ".ll-root .ll-sliders"
TOL = 1e-3


def _shipped():
    root = shipped_root()
    return sorted(p for p in root.iterdir() if (p / "model.safetensors").is_file()) if root else []


def _wait_live(page, sha: str | None = None, timeout: float = 90_000) -> str:
    """Wait until the page's browser decoder is live (for checkpoint `sha` if given) -> its sha256."""
    sel = f".ll-root[data-ready='{sha}']" if sha else ".ll-root[data-ready]:not([data-ready='probe'])"
    page.wait_for_selector(sel + " .ll-sliders", timeout=timeout)
    _settle(page)
    ready = page.locator(".ll-root").first.get_attribute("data-ready")
    assert ready not in (None, "probe", "error", "missing"), ready
    return ready


class _FramesSent:
    """Counts websocket messages the page sends to the server (a rerun request is one of them)."""

    def __init__(self, page):
        self.times: list[float] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda _: self.times.append(time.perf_counter())))

    def __len__(self) -> int:
        return len(self.times)


@pytest.fixture(scope="module")
def frames(page):  # noqa: F811 - registered before the first navigation so the socket is seen
    return _FramesSent(page)


def _drag_without_rerun(page, slider, frames, moves: int, step: float, what: str) -> int:
    """Press a browser slider's thumb at the middle of its track and drag it `moves` times by `step` of the track's
    width (the mouse stays down), then assert the page sent the server nothing meanwhile: the browser decodes.
    -> the number of frames sent before the drag."""
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.wait_for_timeout(300)
    sent0 = len(frames)
    page.mouse.down()
    for i in range(1, moves + 1):
        page.mouse.move(box["x"] + box["width"] * (0.5 + step * i), y)
        page.wait_for_timeout(40)
    page.wait_for_timeout(300)
    assert len(frames) == sent0, f"{what} must not talk to the server (no rerun)"
    return sent0


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name)
def test_browser_decode_equals_torch(page, server, frames, path):  # noqa: F811
    from core.checkpoints import load_checkpoint

    ckpt = load_checkpoint(path, device="cpu")
    _open(page, f"{server}/interpolation?ckpt=shipped/{path.name}")
    sha = _wait_live(page)
    assert sha == ckpt.sha256, "the page must decode with the checkpoint the test loaded"
    d = ckpt.model.latent_dim
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.zeros(1, d), torch.randn(6, d, generator=g) * 1.5, torch.rand(3, d, generator=g) * 2 - 1])
    got = np.asarray(page.evaluate("([sha, zs]) => window.latentLab.decode(sha, zs)", [sha, z.tolist()]),
                     np.float32)
    with torch.no_grad():
        want = ckpt.model.eval().decode(z).numpy().reshape(len(z), -1)
    assert got.shape == want.shape
    diff = float(np.abs(got - want).max())
    assert diff <= TOL, f"{path.name}: browser vs torch max |diff| = {diff:.2e}"
    many = np.asarray(page.evaluate("([sha, zs]) => window.latentLab.decodeMany(sha, zs)", [sha, z.tolist()]),
                      np.float32)  # the batched path the decoded manifold uses
    diff = float(np.abs(many - want).max())
    assert many.shape == want.shape and diff <= TOL, f"{path.name}: decodeMany vs torch max |diff| = {diff:.2e}"
    _no_exception(page, path.name)


def test_drag_decodes_in_browser_without_rerun_and_release_updates_url(page, server, frames):  # noqa: F811
    _open(page, f"{server}/interpolation?ckpt=shipped/mnist5k-vae-z16&lam=0.5")
    _wait_live(page)
    canvas = page.locator(".ll-root canvas[data-kind='decoded']").first
    before_pixels = canvas.evaluate("c => c.toDataURL()")
    paints0 = int(page.locator(".ll-root").first.get_attribute("data-paints") or 0)
    slider = page.locator("[data-testid='llDecoderSlider']").first
    # the thumb of a range over [-0.5, 1.5] sits at (lam + 0.5) / 2 of the track
    sent0 = _drag_without_rerun(page, slider, frames, 15, 0.02, "moving the browser slider")
    assert page.locator(IDLE).count() == 1
    paints = int(page.locator(".ll-root").first.get_attribute("data-paints"))
    assert paints >= paints0 + 5, f"only {paints - paints0} repaints during a 15-step drag"
    assert canvas.evaluate("c => c.toDataURL()") != before_pixels, "the decoded image must change while dragging"
    shown = float(page.locator(".ll-slider-value").first.inner_text())
    assert shown > 0.8

    page.mouse.up()
    page.wait_for_function(f"() => location.search.includes('lam={shown:g}')", timeout=30_000)
    _settle(page)
    assert len(frames) > sent0, "letting go must tell the server"
    assert page.get_by_text(f"LSI soft label at λ = {shown:.2f}").count() >= 1
    _no_exception(page, "after the browser slider")


def test_server_decode_switch_keeps_the_old_slider(page, server, frames):  # noqa: F811
    _open(page, f"{server}/interpolation?decode=server")
    page.get_by_text("λ = 0.50").first.wait_for(timeout=30_000)
    # the caption can be drawn before the slider's fragment on a loaded machine: wait for the slider itself
    page.locator("[data-testid='stSlider']").first.wait_for(timeout=30_000)
    _settle(page)
    assert page.locator(LIVE).count() == 0


def test_isda_direction_drag_stays_in_browser_and_release_reaches_server(page, server, frames):  # noqa: F811
    _open(page, f"{server}/isda?ckpt=shipped/mnist5k-aae-gaussian-z16")
    _wait_live(page)
    page.get_by_text("2 · Move a sample").first.scroll_into_view_if_needed()
    moved = page.locator(".ll-root canvas[data-kind='decoded']").first
    before = moved.evaluate("c => c.toDataURL()")
    slider = page.locator("[data-testid='llDecoderSlider']").first  # v1, over [-3, 3]
    sent0 = _drag_without_rerun(page, slider, frames, 11, 0.04, "moving a direction slider")
    assert moved.evaluate("c => c.toDataURL()") != before, "the moved sample must change while dragging"
    shown = float(page.locator(".ll-slider-value").first.inner_text())
    assert shown >= 1.5
    page.mouse.up()
    page.wait_for_timeout(500)
    _settle(page)
    assert len(frames) > sent0, "letting go must tell the server"
    # the server kept the value: its own (fallback) slider shows it
    page.get_by_text("Decode on the server").first.click()
    _settle(page)
    v1 = page.locator("[data-testid='stSlider']", has_text="v1").locator("input[type='range']").first
    v1.wait_for(timeout=30_000)
    assert float(v1.get_attribute("aria-valuenow") or v1.input_value()) == pytest.approx(shown)
    assert page.locator(LIVE).count() == 0
    _no_exception(page, "ISDA after the browser sliders")


def test_browser_paths_match_core_latent(page, server, frames):  # noqa: F811
    """The codes the browser builds from slider values: LSI linear / slerp and the ISDA directions."""
    from core.latent import interpolate_latent

    _open(page, f"{server}/interpolation")
    _wait_live(page)
    g = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    lams = [-0.5, 0.0, 0.3, 0.5, 1.0, 1.5]
    for mode in ("linear", "slerp"):
        want = interpolate_latent(z0, z1, lams, mode=mode).numpy()
        got = np.asarray([page.evaluate("([p, v]) => window.latentLab.codeAt(p, v)",
                                        [{"kind": mode, "z0": z0.tolist(), "z1": z1.tolist()}, [lam]]) for lam in lams])
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=mode)
    dirs = torch.randn(3, 16, generator=g)
    t = [0.5, -1.25, 2.0]
    got = page.evaluate("([p, v]) => window.latentLab.codeAt(p, v)",
                        [{"kind": "directions", "base": z0.tolist(), "dirs": dirs.tolist()}, t])
    np.testing.assert_allclose(got, (z0 + torch.tensor(t) @ dirs).numpy(), atol=1e-5)


def test_new_pair_repaints_mixup_without_reload(page, server, frames):  # noqa: F811
    """Another sample A (a rerun, not a page load) reaches the live element: its mixup and decode change."""
    _open(page, f"{server}/interpolation?i0=500&i1=3500")
    _wait_live(page)
    shot = lambda kind: page.locator(f".ll-root canvas[data-kind='{kind}']").first.evaluate(  # noqa: E731
        "c => c.toDataURL()")
    mix, dec = shot("mix"), shot("decoded")
    box = page.get_by_label("Index of A (0–4999)")
    box.fill("501")
    box.press("Tab")
    page.wait_for_function("() => location.search.includes('i0=501')", timeout=30_000)
    _settle(page)
    assert shot("mix") != mix and shot("decoded") != dec


def test_traversal_offset_drag_decodes_every_row_in_browser(page, server, frames):  # noqa: F811
    """Beta & dimensions: one offset slider, one panel per row; row r paints decode(z0 + t sigma_d e_d),
    d = the row's dimension, sigma_d = the std of the data's codes in it, z0 = the chosen sample's code."""
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.latent import encode_dataset

    name, i0 = "mnist5k-vae-z16", 7
    _open(page, f"{server}/beta_dims?ckpt=shipped/{name}&i0={i0}")
    sha = _wait_live(page)
    root = page.locator(".ll-root").first
    root.scroll_into_view_if_needed()
    canvases = root.locator("canvas[data-kind='decoded']")
    n_rows = canvases.count()
    assert n_rows == 8  # the grid's default: the top 8 dimensions, one panel each
    shot = lambda: [c.evaluate("c => c.toDataURL()") for c in canvases.all()]  # noqa: E731
    before = shot()
    paints0 = int(root.get_attribute("data-paints") or 0)
    slider = root.locator("[data-testid='llDecoderSlider']")
    assert slider.count() == 1
    sent0 = _drag_without_rerun(page, slider, frames, 12, 0.03, "moving the offset slider")  # from t = 0 of -3 .. 3
    assert page.locator(IDLE).count() == 1
    assert int(root.get_attribute("data-paints")) >= paints0 + 5
    after = shot()
    assert after[0] != before[0], "the top row (the most used dimension) must change while dragging"
    t = float(slider.input_value())
    assert t >= 1.5

    ckpt = load_checkpoint(shipped_root() / name, device="cpu")
    assert ckpt.sha256 == sha
    z = encode_dataset(ckpt.model, load_dataset(ckpt.meta["dataset"]).x)
    sigma = z.std(0, unbiased=False)
    dims = [int(root.locator(".ll-panel-title").nth(r).inner_text().split()[-1]) for r in range(n_rows)]
    assert len(set(dims)) == n_rows
    codes = z[i0].repeat(n_rows, 1)
    codes[torch.arange(n_rows), dims] += t * sigma[dims]
    with torch.no_grad():
        want = ckpt.model.eval().decode(codes).numpy().reshape(n_rows, -1)
    got = np.asarray([c.evaluate("c => Array.from(c.__llDecoded)") for c in canvases.all()], np.float32)
    diff = float(np.abs(got - want).max())
    assert diff <= TOL, f"browser vs torch max |diff| = {diff:.2e} at t = {t}"

    page.mouse.up()
    page.wait_for_timeout(500)
    _settle(page)
    assert len(frames) > sent0, "letting go must tell the server"
    page.get_by_text("Decode on the server").last.click()  # the server kept the value: its slider shows it
    _settle(page)
    server_slider = page.locator("[data-testid='stSlider']", has_text="Offset t").locator("input[type='range']")
    server_slider.first.wait_for(timeout=30_000)
    v = server_slider.first
    assert float(v.get_attribute("aria-valuenow") or v.input_value()) == pytest.approx(t)
    assert page.locator(LIVE).count() == 0
    _no_exception(page, "Beta & dimensions after the offset slider")
