"""Training as a queued job: progress per epoch, failure as a result, cancel, and resume after
the worker is killed with SIGKILL."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from tests.train.conftest import kill_and_resume, make_image_folder, tiny_config
from wildspace.jobs.store import JobStore
from wildspace.jobs.training import run_training, training_spec
from wildspace.settings import load_settings


@dataclass
class _Ctx:
    service: object
    worker_id: str = "test-worker"
    stop: threading.Event = field(default_factory=threading.Event)


def _service():
    from wildspace.services.detectors import DetectorService

    return DetectorService(load_settings())


def test_job_runs_in_process_with_progress_and_installs_the_model(tmp_path, image_folder):
    store = JobStore(tmp_path / "storage")
    spec = store.create(training_spec("alice", str(image_folder), tiny_config(image_folder, tmp_path, epochs=2)))
    assert store.status(spec.id, "alice").state == "queued"
    result = run_training(store, spec.id, _Ctx(_service()), renew=lambda: True)
    assert result["state"] == "done" and result["model"] == "tiny-colours"
    s = store.status(spec.id, "alice")
    assert (s.state, s.done, s.total, s.model) == ("done", 2, 2, "tiny-colours")
    assert store.progress(spec.id)["epoch"] == 2
    from wildspace.services.classifiers import ClassifierService

    assert "tiny-colours" in ClassifierService(load_settings()).names("species")


def test_zip_upload_bad_data_and_cancel(tmp_path, image_folder):
    import zipfile

    store = JobStore(tmp_path / "storage")
    z = tmp_path / "classes.zip"
    with zipfile.ZipFile(z, "w") as f:
        for p in image_folder.rglob("*.png"):
            f.write(p, f"top/{p.parent.name}/{p.name}")
    spec = store.create(training_spec("bob", str(z), tiny_config(z, tmp_path, epochs=1, name="zipped")))
    assert run_training(store, spec.id, _Ctx(_service()), lambda: True)["labels"] == ["blue", "red"]
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = store.create(training_spec("bob", str(empty), tiny_config(empty, tmp_path, name="bad")))
    result = run_training(store, bad.id, _Ctx(_service()), lambda: True)
    assert "no images found; expected one folder per class" in result["error"]
    assert store.status(bad.id, "bob").state == "failed"
    c = store.create(training_spec("bob", str(image_folder), tiny_config(image_folder, tmp_path, name="c")))
    store.cancel(c.id, "bob")
    assert run_training(store, c.id, _Ctx(_service()), lambda: True) is None
    assert store.status(c.id, "bob").state == "cancelled"


@pytest.mark.slow
def test_killed_worker_resumes_training_from_the_last_epoch(tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q' / 'huey.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("WILDSPACE_LEASE_TTL", "2")
    data = make_image_folder(tmp_path / "data", per_class=16)
    queue = JobQueue(load_settings())
    job = queue.submit(training_spec("alice", str(data), tiny_config(data, tmp_path, epochs=8, batch_size=2)))
    s, seen, _ = kill_and_resume(queue, job, tmp_path, epochs=8)
    assert s.state == "done" and s.done == 8
    assert seen == sorted(seen)  # progress never went back to epoch 0/1
    import torch

    ckpt = torch.load(tmp_path / "storage" / "jobs" / job / "train" / "checkpoint.pt", weights_only=True)
    import json

    assert [h["epoch"] for h in json.loads(ckpt["history"])] == list(range(1, 9))
    assert queue.store.result(job)["model"] == "tiny-colours"
