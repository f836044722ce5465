"""A real browser (Debian's Chromium through Playwright) uploads a file in each tab, waits for
the result and saves a screenshot; the annotated video must play (it reports a duration)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.ui.conftest import MODEL

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)"),
]
ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def page(running_app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.goto(running_app.local_url)
        pg.wait_for_selector("#single-run", timeout=60_000)
        yield pg
        browser.close()


def test_single_image_tab(page, shared_data, tmp_path):
    page.get_by_role("tab", name="Single image").click()
    page.locator("#single-input input[type=file]").set_input_files(
        str(shared_data / "camera-trap" / "megadetector-test" / ZEBRA))
    _select(page, "single")
    page.click("#single-run")
    page.wait_for_selector("#single-output img", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.body.innerText.includes('zebra')", timeout=TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "single.png"), full_page=True)
    assert (tmp_path / "single.png").stat().st_size > 10_000


def test_batch_tab(page, upload_zip, tmp_path):
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-files input[type=file]").set_input_files(str(upload_zip))
    _select(page, "batch")
    page.click("#batch-run")
    page.wait_for_function(
        "() => (document.querySelector('#batch-summary')?.innerText || '').includes('4 files')",
        timeout=TIMEOUT_MS)
    page.wait_for_selector("#batch-gallery img", timeout=TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
    assert "1 failed" in page.inner_text("#batch-summary")


def test_video_tab_plays_in_chromium(page, shared_data, tmp_path):
    videos = sorted(str(p) for p in (shared_data / "video").iterdir()
                    if p.suffix.lower() in (".mp4", ".avi", ".asf"))
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-files input[type=file]").set_input_files(videos)
    page.fill("#video-step input", "10")
    _select(page, "video")
    page.click("#video-run")
    page.wait_for_function(
        "() => { const v = document.querySelector('#video-output video');"
        " return v && isFinite(v.duration) && v.duration > 0 }", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => (document.querySelector('#video-summary')?.innerText || '').includes('chimp.mp4')",
        timeout=TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "video.png"), full_page=True)
    href = page.locator("#video-json a").first.get_attribute("href")
    doc = json.loads(page.request.get(href if href.startswith("http") else page.url.rstrip("/") + href).text())
    assert sorted(im["file"] for im in doc["images"]) == sorted(Path(v).name for v in videos)
    assert not any(im.get("failure") for im in doc["images"])


def _select(page, prefix: str) -> None:
    """Pick the imported model in the tab's dropdown."""
    dd = page.locator(f"#{prefix}-model input")
    dd.click()
    page.get_by_role("option", name=MODEL).click()
