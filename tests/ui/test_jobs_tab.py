"""The app with the embedded queue: big batches go to the in-process worker; jobs are
listed, downloaded and cancelled only by their owner, and survive an app restart."""

from __future__ import annotations

import dataclasses

import pytest

from tests.ui.conftest import MODEL
from wildspace.formats.megadetector import read_results

pytestmark = pytest.mark.slow


@pytest.fixture
def queued_app(app_service, tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.ui.app import build_app

    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(dataclasses.replace(app_service.settings, storage=tmp_path / "storage"),
                     url=f"sqlite:///{tmp_path / 'q.db'}")
    ctx = start_local_worker(queue, app_service)
    demo = build_app(app_service, tmp_path / "out", queue=queue, queue_above=2)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo, queue
    demo.close()
    ctx.shutdown()


def wait_done(client, timeout: float = 180.0) -> list[list]:
    """The caller's job rows once every job is done (polling ``list_jobs`` like the Jobs tab)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = client.predict(api_name="/list_jobs")[0]["data"]
        if rows and all(r[1] == "done" for r in rows):
            return rows
        assert time.monotonic() < deadline, f"jobs not done after {timeout} s: {rows}"
        time.sleep(0.5)


def test_big_batch_goes_to_the_queue_and_only_its_owner_sees_it(queued_app, upload_zip, shared_data, tmp_path):
    from gradio_client import Client, handle_file

    demo, queue = queued_app
    alice = Client(demo.local_url, verbose=False)
    summary, gallery, table, downloads = alice.predict(
        [handle_file(str(upload_zip))], MODEL, 0.25, api_name="/detect_batch")
    # answered at once: the handler does not hold an app slot while the worker runs the job
    assert "queued as job" in summary and not gallery and not downloads
    rows = wait_done(alice)
    assert len(rows) == 1 and rows[0][1] == "done" and rows[0][2] == rows[0][3] == 4 and rows[0][4] == 1
    job_id = rows[0][0]
    assert job_id in summary
    files = alice.predict(job_id, 0.25, api_name="/job_results")
    md = next(f for f in files if f.endswith("_megadetector.json"))
    assert len(read_results(md)["images"]) == 4

    bob = Client(demo.local_url, verbose=False)
    assert bob.predict(api_name="/list_jobs")[0]["data"] == []
    for api, args in (("/job_results", (job_id, 0.25)), ("/cancel_job", (job_id,))):
        with pytest.raises(Exception, match="No such job"):
            bob.predict(*args, api_name=api)

    # the job outlives the app: a new queue on the same storage still has it for its owner
    from wildspace.jobs.queue import JobQueue

    owner = queue.store.spec(job_id).owner
    again = JobQueue(queue.settings, url=queue.url)
    assert again.store.status(job_id, owner).state == "done"
