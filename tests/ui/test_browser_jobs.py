"""In a real browser: a big batch goes to the queue, the Jobs tab shows it, and it is still
there after a page reload and after an app restart (the owner token lives in the browser)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.ui.conftest import MODEL

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)"),
]
TIMEOUT_MS = 180_000


def _start(service, tmp_path, port=None):
    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.ui.app import build_app

    queue = JobQueue(dataclasses.replace(service.settings, storage=tmp_path / "storage"),
                     url=f"sqlite:///{tmp_path / 'q.db'}")
    ctx = start_local_worker(queue, service)
    demo = build_app(service, tmp_path / "out", queue=queue, queue_above=1)
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, ctx


def _jobs_row(page, job_id: str) -> str:
    """The Jobs tab's row for ``job_id`` once it shows as done."""
    page.get_by_role("tab", name="Jobs").click()
    page.wait_for_function(
        "id => { const t = document.querySelector('#jobs-table')?.innerText || '';"
        " return t.includes(id) && /\\bdone\\b[\\s\\S]*\\b4\\b/.test(t.split(id)[1] || '') }",
        arg=job_id, timeout=TIMEOUT_MS)
    text = page.inner_text("#jobs-table")
    return text[text.index(job_id):].split("\n")[0]


def test_jobs_survive_reload_and_restart(app_service, upload_zip, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    demo, ctx = _start(app_service, tmp_path)
    port = demo.server_port
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(demo.local_url)
            page.get_by_role("tab", name="Batch").click()
            page.locator("#batch-files input[type=file]").set_input_files(str(upload_zip))
            page.locator("#batch-model input").click()
            page.get_by_role("option", name=MODEL).click()
            page.click("#batch-run")
            page.wait_for_function(
                "() => (document.querySelector('#batch-summary')?.innerText || '').includes('queued as job')",
                timeout=TIMEOUT_MS)
            (job_id,) = [p.name for p in (tmp_path / "storage" / "jobs").iterdir()]
            _jobs_row(page, job_id)
            page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
            page.reload()
            _jobs_row(page, job_id)
            demo.close()
            ctx.shutdown()
            demo, ctx = _start(app_service, tmp_path, port=port)  # same storage, same browser
            page.goto(demo.local_url)
            _jobs_row(page, job_id)
            other = browser.new_context().new_page()  # another person: empty local storage
            other.goto(demo.local_url)
            other.get_by_role("tab", name="Jobs").click()
            other.wait_for_timeout(4000)  # several refresh ticks
            assert job_id not in other.inner_text("#jobs-table")
        finally:
            browser.close()
            demo.close()
            ctx.shutdown()
