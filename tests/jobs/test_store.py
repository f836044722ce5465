"""The job store on its own, and the whole queue over a non-local fsspec storage root."""

from __future__ import annotations

import time

import pytest

from wildspace.jobs.store import JobNotFound, JobSpec, JobStore
from wildspace.types import Detection, ImageResult


def _spec(n=5, owner="alice", chunk_size=2) -> JobSpec:
    return JobSpec(owner=owner, kind="detect-images", model="m",
                   inputs=[{"name": f"img{i}.jpg", "path": f"/x/img{i}.jpg"} for i in range(n)],
                   chunk_size=chunk_size)


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        return JobStore(tmp_path / "storage")
    return JobStore(f"memory://store-{time.time_ns()}")


def test_ids_chunks_and_ownership(store):
    spec = store.create(_spec())
    assert len(spec.id) == 32  # 16 random bytes as hex: 128 bits
    assert [list(c) for c in spec.chunks()] == [[0, 1], [2, 3], [4]]
    assert store.status(spec.id, "alice").state == "queued"
    with pytest.raises(JobNotFound):
        store.status(spec.id, "mallory")
    with pytest.raises(JobNotFound):
        store.spec("../../etc", "alice")
    assert store.list("mallory") == [] and [s.id for s in store.list("alice")] == [spec.id]


def test_items_are_recorded_once_and_assembled(store):
    spec = store.create(_spec(3))
    store.put_detector(spec.id, ("animal", "person", "vehicle"), "md.pt", {"typical_detection_threshold": 0.2})
    det = (Detection(0, 0.9, (0.1, 0.1, 0.2, 0.2)),)
    assert store.put_item(spec.id, 0, ImageResult("img0.jpg", det), "w1")
    assert not store.put_item(spec.id, 0, ImageResult("img0.jpg", ()), "w2")  # first result wins
    assert not store.assemble(spec.id)
    store.put_item(spec.id, 1, ImageResult("img1.jpg", None, failure="corrupt"), "w1")
    assert store.status(spec.id, "alice").state == "running"
    store.put_item(spec.id, 2, ImageResult("img2.jpg", ()), "w2")
    assert store.assemble(spec.id)
    s = store.status(spec.id, "alice")
    assert (s.state, s.done, s.total, s.failures) == ("done", 3, 3, 1)
    doc = store.document(spec.id)
    by = {im["file"]: im for im in doc["images"]}
    assert by["img0.jpg"]["detections"][0]["conf"] == 0.9 and by["img1.jpg"]["detections"] is None
    assert doc["detection_categories"]["1"] == "animal"


def test_cancel(store):
    spec = store.create(_spec())
    with pytest.raises(JobNotFound):
        store.cancel(spec.id, "mallory")
    store.cancel(spec.id, "alice")
    assert store.status(spec.id, "alice").state == "cancelled"
    assert spec.id not in [s.id for s in store.unfinished()]


@pytest.mark.slow
def test_queue_over_fsspec_storage(app_like_service, tmp_path, shared_data):
    """App and worker sharing a non-local storage root: uploads are copied into it, the
    worker reads them back from it, and results come back through it."""
    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.runs.batch import job_output, submit_image_batch

    store = JobStore(f"memory://shared-{time.time_ns()}")
    queue = JobQueue(app_like_service.settings, url=f"sqlite:///{tmp_path / 'q.db'}", store=store)
    assert not store.files.local
    ctx = start_local_worker(queue, app_like_service)
    try:
        imgs = [str(p) for p in sorted((shared_data / "camera-trap" / "ena24-small").glob("*.jpg"))[:5]]
        job = submit_image_batch(queue, "alice", imgs, "coco-yolov5n", 0.25, tmp_path / "app")
        deadline = time.time() + 120
        while store.status(job, "alice").state != "done":
            assert time.time() < deadline, store.status(job, "alice")
            time.sleep(0.2)
        out = job_output(store, job, "alice", tmp_path / "out", 0.25, exports=("md-json", "crops"))
        assert len(out.results) == 5 and not any(r.failed for r in out.results)
        assert out.exports["crops"].stat().st_size > 0  # inputs fetched back from the storage
    finally:
        ctx.shutdown()


@pytest.fixture
def app_like_service(tmp_path, shared_data):
    from wildspace.services.detectors import DetectorService
    from wildspace.settings import BUILTIN_SPECS_DIR, Settings

    home = tmp_path / "home"
    service = DetectorService(Settings(home=home, spec_dirs=(BUILTIN_SPECS_DIR, home / "specs"),
                                       offline=True))
    service.import_model(shared_data / "weights" / "yolov5n.pt", "coco-yolov5n")
    return service
