"""Real-browser tests of a user's own data, end to end, against one `streamlit run` whose runs folder the test knows:

- a table (the built-in wine set, 13 named features): a tiny MLP beta-VAE trained here in a second is decoded in
  the browser on Interpolation, ISDA and Beta & dimensions; its panels are bar charts over the 13 features, and
  the bars painted during a drag equal torch's decode of the same code (no server rerun meanwhile);
- a zip of image folders uploaded from Your data is trained on from the Train page (2 epochs), its latent map opens,
  and the interpolation slider is dragged with the browser decoding (no server rerun during the drag).
That a second browser does not see an upload is tests/test_browser_user_data.py.
Same skip and CI rules as tests/test_browser.py (whose helpers are reused here).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from test_browser import IDLE, SHOTS, _no_exception, _open, _settle, chromium_page, streamlit_server
from test_browser_decode import _FramesSent, _drag_without_rerun, _wait_live
from test_browser_user_data import pets_zip

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOL = 1e-3
WINE_CKPT = "wine-vae-tiny"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(url, runs folder) of one streamlit server."""
    with streamlit_server(tmp_path_factory) as served:
        yield served


@pytest.fixture(scope="module")
def browser(lab):
    with chromium_page() as page:
        yield page, _FramesSent(page)


def train_tiny_wine_vae(folder, seed: int = 0, epochs: int = 40):
    """(checkpoint, dataset) of a tiny MLP beta-VAE (z = 2) on the wine table, trained here (about a second) and
    saved in `folder` (under the runs folder's checkpoints/ the app lists it)."""
    from core.checkpoints import load_checkpoint, save_checkpoint
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit

    ds = load_dataset("wine")
    model = build_model(ModelConfig(kind="vae", input_shape=ds.input_shape, latent_dim=2, hidden=32))
    tcfg = TrainConfig(epochs=epochs, batch_size=32, seed=seed)
    hist = fit(model, ds, tcfg)
    save_checkpoint(folder, model, train_config=tcfg, dataset_id="wine", class_names=list(ds.class_names),
                    metrics={"recon_mse": 0.5}, history=hist)
    return load_checkpoint(folder, device="cpu"), ds


@pytest.fixture(scope="module")
def wine_model(lab):
    """A tiny wine VAE saved where the app lists it."""
    return train_tiny_wine_vae(lab[1] / "checkpoints" / WINE_CKPT)


def _bars(canvas) -> tuple[np.ndarray, list[dict]]:
    """(the decoded values a chart canvas painted, the bars it drew: {name, value, x, y, w, h, rgb at the centre})."""
    bars = canvas.evaluate("""c => {
        const ctx = c.getContext('2d');
        return c.__llBars.map(b => ({...b, rgb: Array.from(ctx.getImageData(b.x + (b.w >> 1), b.y + (b.h >> 1), 1, 1)
            .data.slice(0, 3))}));
    }""")
    return np.asarray(canvas.evaluate("c => Array.from(c.__llDecoded)"), np.float32), bars


def test_table_model_bars_are_torch_decode_while_dragging(lab, browser, wine_model):
    from core.latent import encode_dataset, interpolate_latent
    from core.webdecoder import vector_chart

    url, _ = lab
    page, frames = browser
    ckpt, ds = wine_model
    i0, i1 = 0, 100
    _open(page, f"{url}/interpolation?dataset=wine&ckpt=runs/{WINE_CKPT}&i0={i0}&i1={i1}&lam=0.5")
    sha = _wait_live(page)
    assert sha == ckpt.sha256
    decoded = page.locator(".ll-root canvas[data-kind='decoded']").first
    assert decoded.get_attribute("data-bars") == "13", "a wine sample is a chart of its 13 features"
    assert page.locator(".ll-root canvas[data-kind='mix']").first.get_attribute("data-bars") == "13"
    names = [b["name"] for b in _bars(decoded)[1]]
    assert names == list(ds.feature_names) and "alcohol" in names

    slider = page.locator("[data-testid='llDecoderSlider']").first
    before = _bars(decoded)[0]
    _drag_without_rerun(page, slider, frames, 10, 0.02, "moving λ over a table model")
    lam = float(slider.input_value())
    assert lam > 0.6
    got, bars = _bars(decoded)
    assert not np.allclose(got, before), "the chart must follow the drag"

    z = encode_dataset(ckpt.model, ds.x)
    code = interpolate_latent(z[i0], z[i1], [lam], mode="linear")
    with torch.no_grad():
        want = ckpt.model.eval().decode(code).numpy()[0]
    diff = float(np.abs(got - want).max())
    assert diff <= TOL, f"browser vs torch max |diff| = {diff:.2e} at λ = {lam}"
    # the bars drawn are those values: one per feature, the sign's colour at its centre, heights in proportion
    assert [b["value"] for b in bars] == pytest.approx(got.tolist(), abs=1e-6)
    up, down = np.array([0x1F, 0x77, 0xB4]), np.array([0xD6, 0x27, 0x28])
    for b in bars:
        assert np.abs(np.array(b["rgb"]) - (up if b["value"] >= 0 else down)).max() <= 2, b
    # ... on the data's axis (core.webdecoder.vector_chart), each bar from the zero line to its value's height
    axis = decoded.evaluate("c => c.__llAxis")
    lo, hi = axis["range"]
    assert [lo, hi] == pytest.approx(vector_chart(ds.x, ds.feature_names)["range"])
    y_of = lambda v: axis["top"] + round((hi - min(hi, max(lo, v))) / (hi - lo) * axis["plotH"])  # noqa: E731
    assert axis["zero"] == y_of(0.0)
    for b in bars:
        assert (b["y"], b["h"]) == (min(y_of(0.0), y_of(b["value"])), max(1, abs(y_of(b["value"]) - y_of(0.0)))), b
    assert max(b["h"] for b in bars) >= 5, "the decoded values must show as bars, not flat lines"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".ll-root").first.screenshot(path=str(SHOTS / "table_bars.png"))
    page.mouse.up()
    page.wait_for_function(f"() => location.search.includes('lam={lam:g}')", timeout=30_000)
    _settle(page)
    _no_exception(page, "interpolation on a table")


@pytest.mark.parametrize("where,panels", [("isda", 2), ("beta_dims", 2)])
def test_table_model_decodes_in_browser_on_isda_and_beta_dims(lab, browser, wine_model, where, panels):
    url, _ = lab
    page, _ = browser
    ckpt, _ = wine_model
    _open(page, f"{url}/{where}?dataset=wine&ckpt=runs/{WINE_CKPT}")
    assert _wait_live(page) == ckpt.sha256, f"{where} must decode the table model in the browser"
    charts = page.locator(".ll-root canvas.ll-chart")
    assert charts.count() == panels  # ISDA: original + moved; Beta & dimensions: one row per latent dimension (z = 2)
    assert all(c.get_attribute("data-bars") == "13" for c in charts.all())
    assert page.get_by_text("Decoding on the server").count() == 0
    _no_exception(page, where)


def test_upload_train_map_and_drag_in_browser(lab, browser, tmp_path):
    url, runs = lab
    page, frames = browser
    archive = tmp_path / "pets.zip"
    pets_zip(archive)
    _open(page, f"{url}/your_data")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(archive))
    _settle(page)
    page.get_by_role("button", name="Check and store").click()
    page.get_by_text(re.compile("Stored as")).first.wait_for(timeout=60_000)
    _settle(page)
    spec = re.search(r"dataset=(?:upload%3A|upload:)([0-9a-f]{64})", page.url)
    assert spec, page.url
    sha = spec.group(1)

    page.goto(f"{url}/train_load?dataset=upload:{sha}", wait_until="domcontentloaded")
    _settle(page)
    page.get_by_role("tab", name="Train").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("2")
    epochs.press("Tab")
    page.get_by_role("button", name=re.compile(r"^Train on upload:")).click()
    page.get_by_text("Saved as").first.wait_for(timeout=180_000)
    _settle(page)
    _no_exception(page, "training on the upload")
    ckpt = re.search(r"ckpt=(runs(?:%2F|/)[^&]+)", page.url)
    assert ckpt and f"upload%3A{sha}" in page.url.replace(":", "%3A"), page.url
    key = ckpt.group(1).replace("%2F", "/")
    from core.checkpoints import load_checkpoint

    trained = load_checkpoint(runs / "checkpoints" / key.split("/", 1)[1], device="cpu")
    assert trained.meta["dataset"] == f"upload:{sha}"

    _open(page, f"{url}/latent_map?dataset=upload:{sha}&ckpt={key}")
    page.locator("[data-testid='stPlotlyChart']").first.wait_for(timeout=120_000)
    _settle(page)
    _no_exception(page, "the latent map of the upload")

    _open(page, f"{url}/interpolation?dataset=upload:{sha}&ckpt={key}&lam=0.5")
    assert _wait_live(page) == trained.sha256
    canvas = page.locator(".ll-root canvas[data-kind='decoded']").first
    before = canvas.evaluate("c => c.toDataURL()")
    slider = page.locator("[data-testid='llDecoderSlider']").first
    _drag_without_rerun(page, slider, frames, 12, 0.02, "dragging λ on the upload's model")
    assert page.locator(IDLE).count() == 1
    assert canvas.evaluate("c => c.toDataURL()") != before, "the decoded image must change while dragging"
    page.mouse.up()
    _settle(page)
    _no_exception(page, "interpolation on the upload")
