"""Real-browser test of the Latent map's probe on table data (wine, 13 named features), against `streamlit run`.

Two tiny z = 2 VAEs trained here (raw axes: the map point is the code). Hovering the map paints the decoded row
under the pointer as latent_decoder.js's bar chart (one bar per named feature, on the data's fixed axis); its bars
equal torch's decode of that code (<= 1e-3), the readout's nearest data point and hole depth equal core.holes',
no message goes to the server while hovering, no grid is drawn, the hole comparison's pointer paints every model's
chart, and a click pins the probe. Same server, skip and CI rules as tests/test_browser.py (whose helpers are
reused here); the image probe is tests/test_browser_probe.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from test_browser import IDLE, SHOTS, _no_exception, _open, _settle, chromium_page
from test_browser_probe import _hover, _reports, _torch_decode, _wait_probe
from test_browser_user_data_train import lab, train_tiny_wine_vae  # noqa: F401  (lab: the module-scoped server fixture)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOL = 1e-3
WINE = ("wine-probe-a", "wine-probe-b")  # two models: the hole comparison is drawn too
POSITIONS = [(0.5, 0.5), (0.2, 0.3), (0.85, 0.7), (0.05, 0.95)]


@pytest.fixture(scope="module")
def page(lab):
    with chromium_page() as pg:
        yield pg


@pytest.fixture(scope="module")
def wine(lab):
    """[(checkpoint, training codes (N, 2))] of two tiny MLP VAEs on wine, saved where the server lists them, and the
    dataset."""
    from core.latent import encode_dataset

    models = []
    for seed, name in enumerate(WINE):
        ckpt, ds = train_tiny_wine_vae(lab[1] / "checkpoints" / name, seed, epochs=20)
        models.append((ckpt, encode_dataset(ckpt.model, ds.x).numpy()))
    return models, ds


def _chart(panel) -> tuple[list[str], list[float], list[float] | None]:
    """(feature names, values) of the bars a probe painted, and its axis range."""
    got = panel.evaluate("""f => { const c = f.querySelector('canvas.lp-probe');
        return {bars: c.__llBars || [], range: c.__llAxis ? c.__llAxis.range : null, n: c.getAttribute('data-bars')}; }""")
    assert got["n"] == str(len(got["bars"]))
    return [b["name"] for b in got["bars"]], [b["value"] for b in got["bars"]], got["range"]


def test_table_probe_paints_the_decoded_row_as_bars_like_torch(lab, page, wine):
    from core.holes import hole_depth_of
    from core.webdecoder import vector_chart

    url, _ = lab
    models, ds = wine
    (ckpt, z), (ckpt_b, z_b) = models
    _open(page, f"{url}/latent_map?dataset=wine&ckpt=runs/{WINE[0]}&grid=16&hgrid=8")
    _wait_probe(page, 2)  # the map's probe and the hole comparison's
    assert page.get_by_text("The decoded grid is for images").count() == 2
    root = page.locator(".lp-root").first
    panel = root.locator("figure.lp-panel").first
    panel.scroll_into_view_if_needed()
    axis = vector_chart(ds.x, ds.feature_names)["range"]
    sent = _reports(root)
    for u, v in POSITIONS:
        got = _hover(page, root, panel, u, v)
        assert got["inside"], "raw axes cover the whole map"
        np.testing.assert_allclose(got["code"], [got["x"], got["y"]], atol=1e-12)  # raw axes: the point is the code
        names, bars, rng = _chart(panel)
        assert names == list(ds.feature_names), "one bar per named feature"
        assert rng == pytest.approx(axis), "the data's fixed axis, as the other pages' charts"
        want = _torch_decode(ckpt, [got["code"]])[0]
        diff = float(np.abs(np.asarray(bars) - want).max())
        assert diff <= TOL, f"bars at {u, v} vs torch max |diff| = {diff:.2e}"
        # the readout: nearest training code and its hole depth, as core.holes measures them
        text = panel.locator(".lp-readout").inner_text()
        m = re.search(r"nearest data point #(\d+) at ([\d.]+) · hole depth ([\d.]+)", text)
        assert m, text
        dist = np.sqrt(((z - np.asarray(got["code"])) ** 2).sum(1))
        assert int(m.group(1)) == int(dist.argmin()) and float(m.group(2)) == pytest.approx(dist.min(), abs=1e-3)
        depth = float(hole_depth_of(np.asarray([got["code"]]), torch.from_numpy(z))[0])
        assert float(m.group(3)) == pytest.approx(depth, abs=0.006), text
    SHOTS.mkdir(parents=True, exist_ok=True)
    root.screenshot(path=str(SHOTS / "table_probe.png"))
    page.wait_for_timeout(300)
    assert _reports(root) == sent, "hovering must not talk to the server (no rerun)"
    page.wait_for_selector(IDLE, timeout=120_000)      # the page's own job polls may still rerun it
    grids = page.evaluate("() => window.latentLabProbe.grids()")
    assert grids and all(g["n"] == 0 and not g["images"] for g in grids), "no decoded grid of bar charts"

    # the hole comparison: the pointer over one model's map paints every model's decoded row
    compare = page.locator(".lp-root").nth(1)
    panels = compare.locator("figure.lp-panel")
    assert panels.count() == 2
    compare.scroll_into_view_if_needed()
    got = _hover(page, compare, panels.nth(1), 0.3, 0.6)
    for p, (c, _) in zip(panels.all(), models):
        code = p.evaluate("f => Array.from(f.querySelector('canvas.lp-probe').__llCode)")
        diff = float(np.abs(np.asarray(_chart(p)[1]) - _torch_decode(c, [code])[0]).max())
        assert diff <= TOL, f"{p.get_attribute('data-panel')}: bars vs torch max |diff| = {diff:.2e}"
    assert got["code"] is not None and ckpt_b.sha256 != ckpt.sha256
    compare.screenshot(path=str(SHOTS / "table_probe_compare.png"))

    # a click pins the probe: the code reaches the URL and the pinned list
    panel.scroll_into_view_if_needed()
    got = _hover(page, root, panel, 0.4, 0.55)
    box = panel.locator("canvas.lp-map").bounding_box()
    page.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + 0.45 * box["height"])
    page.wait_for_function("() => location.search.includes('pins=raw')", timeout=60_000)
    _settle(page)
    pin = page.evaluate("() => new URLSearchParams(location.search).get('pins')").split(":")
    np.testing.assert_allclose([float(v) for v in pin[2].split(",")], got["code"], atol=1e-4)
    page.get_by_text("Use as interpolation endpoint A").wait_for(timeout=60_000)   # the pin's rerun may start late
    assert page.get_by_text("Use as interpolation endpoint A").count() == 1
    _no_exception(page, "the probe on a table")
