"""The *Individual lookup* tab in Chromium: look up a known animal, see the verdict and the
top-match thumbnails, enrol a new animal, and save a screenshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.reid.synthetic import coat, photo, write_set
from tests.ui.test_browser import CHROMIUM, TIMEOUT_MS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def page(app_service, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    from wildspace.services.galleries import GalleryService
    from wildspace.ui.app import build_app

    folder = tmp_path_factory.mktemp("cats")
    GalleryService(app_service.settings).build("cats", folder, write_set(folder))
    demo = build_app(app_service, tmp_path_factory.mktemp("app-out"))  # sees the new gallery
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1400})
        pg.goto(demo.local_url)
        pg.wait_for_selector("#single-run", timeout=60_000)
        yield pg
        browser.close()
    demo.close()


def test_lookup_and_enrol_in_the_browser(page, tmp_path):
    page.get_by_role("tab", name="Individual lookup").click()
    q = tmp_path / "bo.jpg"
    Image.fromarray(photo(coat(1001), seed=77)).save(q)  # a new photo of 'bo'
    page.locator("#lookup-input input[type=file]").set_input_files(str(q))
    page.locator("#lookup-crop-with input").click()
    page.get_by_role("option", name="none (the photo is already a crop)").click()
    page.click("#lookup-run")
    page.wait_for_function(
        "() => (document.querySelector('#lookup-verdict')?.innerText || '').includes('This is bo')",
        timeout=TIMEOUT_MS)
    page.wait_for_selector("#lookup-matches img", timeout=TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "lookup.png"), full_page=True)
    assert (tmp_path / "lookup.png").stat().st_size > 10_000

    page.fill("#lookup-identity textarea, #lookup-identity input", "Bo-junior")
    page.click("#lookup-enrol")
    page.wait_for_function(
        "() => (document.querySelector('#lookup-enrolled')?.innerText || '').includes('Enrolled Bo-junior')",
        timeout=TIMEOUT_MS)
