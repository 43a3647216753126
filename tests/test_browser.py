"""Real-browser test: `streamlit run` on a free localhost port + headless Debian Chromium (Playwright).

Opens every page, moves the interpolation slider, checks that no page shows an exception, and saves
screenshots to runs/screenshots/ (git-ignored; set LATENT_LAB_SCREENSHOTS=docs/screenshots to refresh the
README's pictures). Without /usr/bin/chromium the test skips with an install hint;
under CI (CI=true) a missing browser is a failure. See DEVELOPERS.md. Never runs `playwright install`.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_support import ROOT, shipped_root, train_stand_ins

CHROMIUM = os.environ.get("LATENT_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--enable-unsafe-swiftshader"]
SHOTS = ROOT / os.environ.get("LATENT_LAB_SCREENSHOTS", "runs/screenshots")
PAGES = [  # (url path, title shown, screenshot name)
    ("", "Latent Lab", "home"),
    ("train_load", "Train or load", "train_load"),
    ("latent_map", "Latent map", "latent_map"),
    ("attributes", "Attribute vectors", "attributes"),
    ("interpolation", "Interpolation", "interpolation"),
    ("isda", "ISDA semantic directions", "isda"),
    ("fewshot", "Few-shot lab", "fewshot"),
    ("beta_dims", "Beta & dimensions", "beta_dims"),
    ("saliency", "Saliency", "saliency"),
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _browser_or_skip():
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM}: install it with `sudo apt-get install -y chromium` (Debian/Ubuntu)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is missing: `pip install -r requirements-test.txt`"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run under CI: {missing}")
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("streamlit did not become healthy")


@contextlib.contextmanager
def streamlit_server(tmp_path_factory):
    """(url, runs folder) of one `streamlit run app.py` on a free loopback port, with its own runs folder (and
    stand-in checkpoints where the shipped ones are missing); stopped on exit."""
    _browser_or_skip()
    runs = tmp_path_factory.mktemp("runs")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LATENT_LAB_RUNS=str(runs),
               LATENT_LAB_WARM_UMAP="0")
    if shipped_root() is None:
        env["LATENT_LAB_CHECKPOINTS"] = str(train_stand_ins(tmp_path_factory.mktemp("ckpts")))
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, runs
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with streamlit_server(tmp_path_factory) as (url, _runs):
        yield url


@contextlib.contextmanager
def chromium_page():
    """A page of a headless Debian Chromium (1400 x 1000), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as pg:
        yield pg


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp']", timeout=60_000)
    _settle(page)


def _settle(page, timeout: float = 120_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_timeout(500)


def _no_exception(page, name: str) -> None:
    exc = page.locator("[data-testid='stException']")
    assert exc.count() == 0, f"{name}: {exc.first.inner_text()}"


@pytest.mark.parametrize("path,title,shot", PAGES, ids=[p[2] for p in PAGES])
def test_page_renders(page, server, path, title, shot):
    _open(page, f"{server}/{path}")
    page.get_by_text(title).first.wait_for(timeout=60_000)
    _no_exception(page, shot)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    # the router's navigation (not Streamlit's v1 pages/ folder mode) is in charge
    assert page.locator("[data-testid='stSidebarNav'] a", has_text="Home").count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=False)


def test_interpolation_slider_moves(page, server):
    """The server-decoded slider (the fallback; tests/test_browser_decode.py covers the in-browser one)."""
    _open(page, f"{server}/interpolation?decode=server")
    caption = page.get_by_text("λ = 0.50").first
    caption.wait_for(timeout=30_000)
    thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
    thumb.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.get_by_text("λ = 0.65").first.wait_for(timeout=30_000)
    _settle(page)
    _no_exception(page, "interpolation after slider")
    assert "lam=0.65" in page.url
    page.screenshot(path=str(SHOTS / "interpolation_slider.png"), full_page=False)


def test_map_box_selection_fills_gallery(page, server):
    """A real plotly box-select drag: the selection event maps back to dataset indices (customdata)."""
    _open(page, f"{server}/latent_map")
    chart = page.locator("[data-testid='stPlotlyChart']").first
    chart.wait_for(timeout=60_000)
    chart.scroll_into_view_if_needed()
    chart.hover()
    page.locator(".modebar-btn[data-title='Box Select']").first.click()
    plot = chart.locator(".nsewdrag").first
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=8)
    page.mouse.up()
    page.get_by_text("point(s)").first.wait_for(timeout=30_000)
    _settle(page)
    _no_exception(page, "latent map after selection")
    text = page.get_by_text("Selection —").first.inner_text()
    assert "— 0 point" not in text, text
    page.screenshot(path=str(SHOTS / "latent_map_selection.png"), full_page=True)


def test_hole_effect_table(page, server):
    _open(page, f"{server}/latent_map")
    page.get_by_text("The hole effect, side by side").first.scroll_into_view_if_needed()
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=180_000)
    _settle(page)
    _no_exception(page, "hole effect")
    page.locator("[data-testid='stDataFrame']").first.scroll_into_view_if_needed()
    page.mouse.wheel(0, 400)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "hole_effect.png"), full_page=False)


def test_shared_state_survives_navigation_and_links(page, server):
    _open(page, f"{server}/?ckpt=shipped/mnist5k-ae-z2&i0=10&i1=20&lam=1.25")
    page.locator("[data-testid='stSidebarNav'] a", has_text="Interpolation").first.click()
    page.get_by_text("λ = 1.25").first.wait_for(timeout=60_000)
    _settle(page)
    _no_exception(page, "interpolation from a shared link")
    url = page.url
    assert "ckpt=shipped%2Fmnist5k-ae-z2" in url or "ckpt=shipped/mnist5k-ae-z2" in url, url
    assert "i0=10" in url and "i1=20" in url and "lam=1.25" in url, url


def test_training_with_live_progress(page, server):
    _open(page, f"{server}/train_load")
    page.get_by_role("tab", name="Train").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")   # not its "Help for Epochs" button
    epochs.fill("2")
    epochs.press("Tab")
    page.get_by_role("button", name="Train on mnist5k").click()
    page.get_by_text("Training…").first.wait_for(timeout=60_000)  # the live progress bar
    page.screenshot(path=str(SHOTS / "training.png"), full_page=False)
    page.get_by_text("Saved as").first.wait_for(timeout=180_000)
    _settle(page)
    _no_exception(page, "training")
    assert "ckpt=runs" in page.url, page.url


def test_fewshot_run_with_status_and_results(page, server):
    _open(page, f"{server}/fewshot")
    for label, value in (("Seeds", "2"), ("Budget: classifier steps", "60")):
        box = page.get_by_role("spinbutton", name=label)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Run").click()
    page.get_by_text(re.compile(r"^Finished")).first.wait_for(timeout=180_000)
    _settle(page)
    _no_exception(page, "few-shot run")
    assert page.get_by_text("mean ± 95% CI over seeds").count() >= 1
    page.get_by_text("Current run").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "fewshot_results.png"), full_page=False)
