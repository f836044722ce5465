"""Issue 13's hostile inputs through ``python -m wildspace detect`` and a queued job.

A folder with a real photo, a 65000x2 PNG (a 0-pixel letterbox before), a looping EPS named
``.jpg`` (Ghostscript before), and a zip whose member has a 304-byte name (an unhandled OSError
before): the command finishes, each bad file is exactly one ``failure``, the good ones have
detections, and a queued job with the same inputs finishes with the same result (it was
re-queued forever before).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

import pytest
from PIL import Image

from tests.corpus import LONG_NAME, LOOPING_EPS

pytestmark = pytest.mark.slow
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
BAD = {"strip.png": "extreme aspect ratio", "holiday.jpg": "not an accepted image format"}


def _cli(*args, timeout=300) -> str:
    r = subprocess.run([sys.executable, "-m", "wildspace", *map(str, args)], cwd=ROOT, text=True,
                       capture_output=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip()


@pytest.fixture
def inputs(tmp_path, shared_data):
    photo = shared_data / "camera-trap" / "ena24-small" / "49.jpg"
    folder = tmp_path / "card"
    folder.mkdir()
    shutil.copy(photo, folder / "good.jpg")
    Image.new("L", (65000, 2)).save(folder / "strip.png")
    (folder / "holiday.jpg").write_bytes(LOOPING_EPS)
    z = tmp_path / "names.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.write(photo, LONG_NAME)
    return folder, z


def _by_name(images: list[dict]) -> dict[str, dict]:
    out = {}
    for im in images:
        assert im["file"] not in out, f"{im['file']} reported twice"
        out[im["file"]] = im
    return out


def _check(images: dict[str, dict]) -> None:
    assert set(images) == {"good.jpg", LONG_NAME, *BAD}
    for name, why in BAD.items():
        assert why in images[name]["failure"], images[name]
    for name in ("good.jpg", LONG_NAME):
        assert not images[name].get("failure") and images[name]["detections"], images[name]
    assert images["good.jpg"]["detections"] == images[LONG_NAME]["detections"]


def test_detect_and_a_queued_job_finish_with_one_failure_per_bad_file(inputs, tmp_path, monkeypatch, workers,
                                                                    shared_data):
    folder, z = inputs
    weights = shared_data / "weights" / "yolov5n.pt"
    out = tmp_path / "out.json"
    _cli("detect", "--weights", weights, "--threshold", "0.05", "--batch-size", "1", "--output", out, folder, z)
    direct = _by_name(json.loads(out.read_text())["images"])
    _check(direct)

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("WILDSPACE_LEASE_TTL", "2")
    job = _cli("jobs", "submit", "--weights", weights, "--threshold", "0.05", "--chunk-size", "2", folder, z)
    workers.start()
    from wildspace.jobs.queue import JobQueue

    store = JobQueue().store
    deadline = time.time() + 240
    while (s := store.status(job)).state != "done":
        assert time.time() < deadline, s
        time.sleep(0.3)
    assert (s.done, s.failures) == (4, 2)
    queued = _by_name(store.document(job)["images"])
    _check(queued)
    for name in direct:
        assert queued[name].get("failure") == direct[name].get("failure"), name
        assert queued[name].get("detections") == direct[name].get("detections"), name
    assert all(r.get("count", 0) <= 1 for r in (store.attempt(job, k) for k in range(2)))  # never retried
