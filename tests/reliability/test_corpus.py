"""The bad-input corpus through the CLI (``detect`` + ``convert``) and a queue worker.

Each run must: not crash, report every bad case as a failure naming its reason, give the good
files exactly the detections of a clean run of the good files alone, and write nothing outside
its output folder (job folder for the worker).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.corpus import build_corpus, check_results, of_kind, uploads
from wildspace.cli import main

MODEL = "coco-yolov5n"
pytestmark = pytest.mark.slow


def tree(root: Path) -> dict[str, int]:
    """Every file below ``root`` with its size (a snapshot to diff)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def created_outside(before: dict[str, int], after: dict[str, int], *allowed: str) -> list[str]:
    return sorted(p for p in after if p not in before and not p.startswith(allowed))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("corpus")
    cases = build_corpus(root / "in", shared_data / "camera-trap" / "ena24-small" / "49.jpg")
    clean = root / "clean"  # the good loose images alone, for the reference run
    clean.mkdir()
    for c in of_kind(cases, "image").values():
        if c.ok:
            shutil.copy(c.path, clean / c.name)
    return root, cases


@pytest.fixture
def imported(shared_data):
    from wildspace.services.detectors import DetectorService

    DetectorService().import_model(shared_data / "weights" / "yolov5n.pt", MODEL)


def _detect(out: Path, *paths: Path) -> dict:
    assert main(["detect", "--model", MODEL, "--batch-size", "1", "--threshold", "0.05",
                 "--output", str(out), *map(str, paths)]) == 0
    return json.loads(out.read_text())


def test_cli_detect_and_convert_on_the_corpus(corpus, imported, tmp_path):
    root, cases = corpus
    # detect takes the folder's videos too (MegaDetector video entries), bad ones as failures
    expected = {**of_kind(cases, "image"), **of_kind(cases, "zip"), **of_kind(cases, "video")}
    before = tree(root)
    out = tmp_path / "out"
    doc = _detect(out / "corpus.json", root / "in", *uploads(cases, "zip"))
    good = check_results(doc["images"], expected)
    clean = {im["file"]: im for im in _detect(tmp_path / "clean.json", root / "clean")["images"]}
    for name, im in good.items():
        if name in clean:
            assert im["detections"] == clean[name]["detections"], name
    assert good["card/ok.jpg"]["detections"] == clean["good.jpg"]["detections"]
    rotated = good["exif-rotated.jpg"]
    assert (rotated.get("width"), rotated.get("height")) in ((None, None), (480, 640))

    # the corpus has no capture times: a plain convert refuses (no invented times), leave-out goes on
    assert main(["convert", str(out / "corpus.json"), "--images", str(root / "in"),
                 "--output", str(out / "refused")]) == 1
    assert main(["convert", str(out / "corpus.json"), "--images", str(root / "in"), "--missing-times", "leave-out",
                 "--output", str(out / "exports")]) == 0
    made = {p.name for p in (out / "exports").iterdir()}
    assert any(n.endswith(".csv") for n in made) and any("coco" in n for n in made)
    assert created_outside(before, tree(root)) == []
    assert not list(tmp_path.parent.rglob("escape.jpg")) and not Path("/abs").exists()


def test_worker_job_on_the_corpus(corpus, imported, tmp_path, monkeypatch, workers):
    from wildspace.detect.pipeline import detect_files
    from wildspace.formats.megadetector import image_to_dict
    from wildspace.jobs.queue import JobQueue
    from wildspace.runs.batch import submit_image_batch
    from wildspace.services.detectors import DetectorService

    root, cases = corpus
    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'queue' / 'huey.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue()
    expected = {**of_kind(cases, "image"), **of_kind(cases, "zip")}
    before_in, before_home = tree(root), tree(Path(queue.settings.home))
    job = submit_image_batch(queue, "alice", uploads(cases, "image", "zip"), MODEL, 0.05,
                             tmp_path / "work")
    workers.start()
    deadline = time.time() + 240
    while (status := queue.store.status(job, "alice")).state not in ("done", "failed"):
        assert time.time() < deadline, status
        time.sleep(0.3)
    assert status.state == "done" and status.total == len(expected)
    good = check_results(queue.store.results(job), expected)
    assert status.failures == sum(not c.ok for c in expected.values())

    det = DetectorService().load(name=MODEL)
    clean_files = [(p, p.name) for p in sorted((root / "clean").iterdir())]
    clean = {r.file: r for r in detect_files(det, clean_files, 0.05, batch_size=1)}
    for name, r in good.items():
        ref = clean[name if name in clean else "good.jpg"]
        assert image_to_dict(r)["detections"] == image_to_dict(ref)["detections"], name
    assert created_outside(before_in, tree(root)) == []
    # the data dir gains only the checkpoint's remembered hash (wildspace.hub.fetch.file_hashes),
    # never anything about the uploads
    home = Path(queue.settings.home)
    home_new = created_outside(before_home, tree(home), "queue", "storage", "file-hashes.json")
    assert home_new == [], home_new
    if (home / "file-hashes.json").exists():
        remembered = json.loads((home / "file-hashes.json").read_text())
        assert all(not Path(p).is_relative_to(root) and Path(p).suffix == ".pt" for p in remembered), remembered
    job_dir = Path(queue.store.root) / "jobs" / job
    assert all(job_dir in p.parents for p in (tmp_path / "storage").rglob("*") if p.is_file()
               and "jobs" in p.parts)
    assert not list(tmp_path.rglob("escape.jpg"))


def test_jobs_submit_checks_zips_like_the_app(corpus, imported, tmp_path, monkeypatch, capsys):
    """`jobs submit` with zips: members are staged in the job's folder, refused ones are
    failures at once (before any worker runs), loose images are used where they are."""
    from wildspace.jobs.queue import JobQueue

    root, cases = corpus
    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'queue' / 'huey.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    before = tree(root)
    assert main(["jobs", "--owner", "alice", "submit", "--model", MODEL, str(root / "in"),
                 *map(str, uploads(cases, "zip"))]) == 0
    job = capsys.readouterr().out.strip()
    store = JobQueue().store
    spec = store.spec(job, "alice")
    expected = {**of_kind(cases, "image"), **of_kind(cases, "zip")}
    assert sorted(i["name"] for i in spec.inputs) == sorted(expected)
    refused = {r.file: r.failure for r in store.results(job)}
    zipped = of_kind(cases, "zip")
    assert refused and set(refused) <= {n for n, c in zipped.items() if not c.ok}  # the rest fail in the worker
    for name, why in refused.items():
        assert zipped[name].reason in why.lower(), (name, why)
    staged = {i["name"] for i in spec.inputs if i["path"].startswith("stored:")}
    assert staged == {n for n, c in zipped.items() if n not in refused}
    assert created_outside(before, tree(root)) == []
    assert not list(tmp_path.rglob("escape.jpg"))


def test_pixel_and_file_limits_come_from_the_environment(corpus, imported, tmp_path, monkeypatch):
    root, cases = corpus
    monkeypatch.setenv("WILDSPACE_MAX_PIXELS", "100000")  # the 640x480 good files are 307200 px
    doc = _detect(tmp_path / "small.json", root / "clean" / "good.jpg")
    assert "exceeds the limit of 100000 pixels" in doc["images"][0]["failure"]
    monkeypatch.setenv("WILDSPACE_MAX_PIXELS", "200000000")
    monkeypatch.setenv("WILDSPACE_MAX_FILE_MB", "0.01")  # 10 kB: every zip member is larger
    doc = _detect(tmp_path / "files.json", *uploads(cases, "zip"))
    by_name = {im["file"]: im for im in doc["images"]}
    assert "WILDSPACE_MAX_FILE_MB" in by_name["card/ok.jpg"]["failure"]
