"""The worker queue end to end, against the embedded SQLite queue and a real Redis server."""

from __future__ import annotations

import signal
import time

import pytest

from wildspace.cli.jobs import unique_inputs
from wildspace.detect.pipeline import detect_files
from wildspace.formats.megadetector import image_to_dict
from wildspace.jobs.queue import JobQueue
from wildspace.jobs.store import JobNotFound, JobSpec
from wildspace.media.images import list_images
from wildspace.settings import load_settings

pytestmark = pytest.mark.slow
SIZE = 320


def _spec(weights, image_list, owner="alice", chunk_size=4) -> JobSpec:
    return JobSpec(owner=owner, kind="detect-images", inputs=unique_inputs(list_images([image_list])),
                   weights=str(weights), image_size=SIZE, threshold=0.05, chunk_size=chunk_size)


def _wait(queue, job_id, until, timeout=240, owner="alice"):
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = queue.store.status(job_id, owner)
        seen.append(s.done)
        if until(s):
            return s, seen
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status {s}")


def _reference(weights, spec) -> dict:
    """What an uninterrupted run in one process gives (same weights, size, batch size 1)."""
    from pathlib import Path

    from wildspace.services.detectors import DetectorService

    det = DetectorService().load(weights=weights, image_size=SIZE)
    files = [(Path(i["path"]), i["name"]) for i in spec.inputs]
    return {r.file: image_to_dict(r) for r in detect_files(det, files, spec.threshold, batch_size=1)}


def test_killed_workers_resume_and_every_item_is_done_exactly_once(queue_url, workers, image_list, shared_data):
    weights = shared_data / "weights" / "yolov5n.pt"
    queue = JobQueue(load_settings())
    spec = _spec(weights, image_list)
    job = queue.submit(spec)
    total = spec.total
    def working(at_least):  # this worker has recorded items itself (it is past start-up)
        start = queue.store.status(job, "alice").done
        return lambda s: s.done >= max(at_least, start + 2)

    w = workers.start()
    _wait(queue, job, working(6))
    w.send_signal(signal.SIGKILL)  # mid-job, no warning
    w.wait()
    w = workers.start()
    _wait(queue, job, working(18))
    w.send_signal(signal.SIGKILL)
    w.wait()
    w = workers.start()
    _wait(queue, job, working(26))
    w.send_signal(signal.SIGTERM)  # graceful: finishes the item in hand, then exits
    assert w.wait(timeout=60) == 0
    after_stop = queue.store.status(job, "alice").done
    time.sleep(1.5)
    assert queue.store.status(job, "alice").done == after_stop  # nothing runs after the stop
    workers.start()
    s, seen = _wait(queue, job, lambda s: s.state == "done")
    assert seen == sorted(seen) and s.done == total  # progress is monotonic and reaches total
    records = list(queue.store.items(job))
    assert sorted(r["index"] for r in records) == list(range(total))
    doc = queue.store.document(job)
    assert sorted(im["file"] for im in doc["images"]) == sorted(i["name"] for i in spec.inputs)
    reference = _reference(weights, spec)
    for im in doc["images"]:
        assert im == reference[im["file"]], im["file"]
    assert len({r["worker"] for r in records}) >= 3  # several worker lives contributed


def test_two_workers_split_a_batch(redis_url, monkeypatch, tmp_path, workers, image_list, shared_data):
    monkeypatch.setenv("WILDSPACE_QUEUE", redis_url)
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(load_settings())
    spec = _spec(shared_data / "weights" / "yolov5n.pt", image_list, chunk_size=2)
    workers.start()
    workers.start()
    time.sleep(6)  # both up before the work arrives
    job = queue.submit(spec)
    _wait(queue, job, lambda s: s.state == "done")
    records = list(queue.store.items(job))
    indexes = [r["index"] for r in records]
    assert len(indexes) == len(set(indexes)) == spec.total
    by_worker = {}
    for r in records:
        by_worker.setdefault(r["worker"], []).append(r["index"])
    assert len(by_worker) == 2 and all(len(v) >= 4 for v in by_worker.values())


def test_cancel_stops_within_one_item_and_owners_are_separate(queue_url, workers, image_list, shared_data):
    queue = JobQueue(load_settings())
    spec = _spec(shared_data / "weights" / "yolov5n.pt", image_list, chunk_size=48)
    job = queue.submit(spec)
    with pytest.raises(JobNotFound):
        queue.store.status(job, "mallory")
    with pytest.raises(JobNotFound):
        queue.store.cancel(job, "mallory")
    assert [s.id for s in queue.store.list("mallory")] == []
    workers.start()
    _, seen = _wait(queue, job, lambda s: s.done >= 3)
    queue.store.cancel(job, "alice")
    at_cancel = queue.store.status(job, "alice").done
    time.sleep(3)
    s = queue.store.status(job, "alice")
    assert s.state == "cancelled"
    assert s.done <= at_cancel + 1 < spec.total
    assert seen == sorted(seen)


def test_jobs_cli_round_trip(tmp_path, monkeypatch, workers, shared_data):
    """submit -> worker -> status --json -> result in every format, through the CLI."""
    import json
    import os
    import subprocess
    import sys
    import zipfile

    from tests.jobs.conftest import ROOT

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "wildspace", *map(str, args)], cwd=ROOT, text=True,
                           capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    folder = shared_data / "camera-trap" / "ena24-small"
    job = cli("jobs", "submit", "--weights", shared_data / "weights" / "yolov5n.pt", "--image-size", SIZE,
              "--chunk-size", 8, folder)
    workers.start()
    from wildspace.cli.jobs import default_owner
    from wildspace.jobs.queue import JobQueue

    store, deadline = JobQueue(url=None).store, time.time() + 240  # polled in-process, not one CLI process per poll
    while store.status(job, default_owner()).state != "done":
        assert time.time() < deadline
        time.sleep(0.5)
    assert json.loads(cli("jobs", "status", job, "--json"))["state"] == "done"
    assert job in cli("jobs", "list")
    cli("jobs", "result", job, "--output", tmp_path / "r.json")
    assert len(json.loads((tmp_path / "r.json").read_text())["images"]) == 21
    for fmt in ("csv", "coco", "camtrap-dp", "crops", "sorted"):
        cli("jobs", "result", job, "--format", fmt, "--threshold", 0.3, "--output", tmp_path / fmt)
    with zipfile.ZipFile(next((tmp_path / "sorted").glob("*.zip"))) as z:
        assert len(z.namelist()) == 21
    from wildspace.formats.camtrap_dp import validate_package
    assert validate_package(next(p for p in (tmp_path / "camtrap-dp").iterdir() if p.is_dir())) == []
    r = subprocess.run([sys.executable, "-m", "wildspace", "jobs", "--owner", "mallory", "result", job,
                        "--output", tmp_path / "x.json"], cwd=ROOT, text=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1 and "no job" in r.stderr
