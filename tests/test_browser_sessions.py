"""Real-browser test of who owns a job: the browser keeps our token cookie, a reload is known as the same
browser (it shows and can stop the training it started), and another browser is not.

Same server fixture, skip and CI rules as tests/test_browser.py (whose fixtures are reused here).
"""

from __future__ import annotations

import re
import time

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, _no_exception, _open, _settle, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser]
COOKIE = "latent_lab_browser"


def _token(context, timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in context.cookies():
            if c["name"] == COOKIE:
                return c["value"]
        time.sleep(0.2)
    raise AssertionError("the browser was never asked to keep a token")


def test_a_reload_is_the_same_browser_and_can_stop_its_training(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            mine = chromium.new_context(viewport={"width": 1400, "height": 1000})
            page = mine.new_page()
            _open(page, f"{server}/train_load")
            token = _token(mine)
            assert re.fullmatch(r"[A-Za-z0-9_-]{20,64}", token)
            page.reload()
            _settle(page)  # from now on the server knows this browser by its token
            page.get_by_role("tab", name="Train").click()
            epochs = page.get_by_role("spinbutton", name="Epochs")
            epochs.fill("200")
            epochs.press("Tab")
            page.get_by_role("button", name="Train on mnist5k").click()
            page.get_by_text(re.compile(r"Training…|Waiting for a free worker|Starting…")).first.wait_for(timeout=60_000)
            page.get_by_text("Jobs of this browser: train").first.wait_for(timeout=60_000)  # the heartbeat fragment

            page.reload()  # a new session: the training is still this browser's
            _settle(page)
            assert _token(mine) == token
            page.get_by_role("tab", name="Train").click()
            page.get_by_text(re.compile(r"Training…|Waiting for a free worker|Starting…")).first.wait_for(timeout=60_000)
            _no_exception(page, "reloaded train page")

            other = chromium.new_context().new_page()  # another browser sees none of it
            _open(other, f"{server}/train_load")
            assert other.get_by_text("Jobs of this browser").count() == 0

            page.locator("[data-testid='stSidebar']").get_by_role("button", name=re.compile(r"Stop train #")).click()
            page.get_by_text(re.compile(r"Done \(stopped early\)|Stopped before anything")).first.wait_for(timeout=60_000)
            _no_exception(page, "stopped from the sidebar")
        finally:
            chromium.close()
