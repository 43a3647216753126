"""Real-browser test of Your data: a zip of image folders uploaded from the page is stored and selected, stays
this browser's after a reload (its first visit had no cookie yet), and another browser neither lists it nor
opens it from the link.

Same server fixture, skip and CI rules as tests/test_browser.py (whose fixtures are reused here).
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from test_browser import CHROMIUM, CHROMIUM_ARGS, _no_exception, _open, _settle, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def pets_zip(path) -> None:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for c in ("cat", "dog"):
            for i in range(6):
                img = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(img, format="PNG")
                zf.writestr(f"pets/{c}/{i}.png", img.getvalue())


def test_upload_a_zip_of_image_folders_and_keep_it_private(server, tmp_path):
    from playwright.sync_api import sync_playwright

    archive = tmp_path / "pets.zip"
    pets_zip(archive)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            mine = chromium.new_context(viewport={"width": 1400, "height": 1000})
            page = mine.new_page()
            _open(page, f"{server}/your_data")   # a first visit: no cookie sent yet
            page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(archive))
            _settle(page)
            page.get_by_role("button", name="Check and store").click()
            page.get_by_text(re.compile("Stored as")).first.wait_for(timeout=60_000)
            _settle(page)
            _no_exception(page, "after the upload")
            link = page.url
            match = re.search(r"dataset=(upload%3A|upload:)([0-9a-f]{64})", link)
            assert match, link
            sidebar = page.locator("[data-testid='stSidebar']")
            assert re.search(r"trained on pets\s+\[your data", sidebar.inner_text()), sidebar.inner_text()[-600:]

            page.reload()   # now with the cookie: the same browser, the upload still listed and selected
            _settle(page)
            assert re.search(r"trained on pets\s+\[your data", sidebar.inner_text()), sidebar.inner_text()[-600:]
            assert page.get_by_text(re.compile(r"pets — image, 12 rows, 2 classes")).count() >= 1

            other = chromium.new_context().new_page()   # another browser, with the link
            _open(other, link)
            other.get_by_text(re.compile("not yours or does not exist")).first.wait_for(timeout=30_000)
            assert other.get_by_text(re.compile(r"pets — image")).count() == 0
            assert "upload" not in other.url.split("dataset=", 1)[-1]
            _no_exception(other, "the other browser")
        finally:
            chromium.close()
