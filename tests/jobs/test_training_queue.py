"""Training jobs have their own queue: the app's in-process worker (``only="detect"``) never
takes them, a ``worker --only train`` does."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from wildspace.jobs.store import JobSpec


def _training_job(queue, tmp_path) -> str:
    from wildspace.jobs.training import training_spec
    from wildspace.train.classifier import TrainConfig

    config = TrainConfig(data=str(tmp_path / "none"), out_dir="", name="never-trained", arch="resnet18", epochs=1)
    return queue.submit(training_spec("cli:test", str(tmp_path / "none"), config))


def test_training_goes_to_its_own_queue_and_a_detect_only_worker_leaves_it(queue_url, tmp_path):
    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.settings import load_settings

    queue = JobQueue(load_settings(), url=queue_url)
    train_id = _training_job(queue, tmp_path)
    assert {t.args[0] for t in queue.train_huey.pending()} == {train_id}
    assert not [t for t in queue.huey.pending() if t.args[0] == train_id]
    assert (train_id, 0) in queue.waiting()

    image = tmp_path / "blank.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)

    class NoDetector:  # the detection chunk fails at once: only whether it is taken matters here
        settings = queue.settings

        def load(self, **kwargs):
            raise RuntimeError("no model in this test")

    detect_id = queue.submit(JobSpec(owner="cli:test", kind="detect-images", inputs=[{"name": "blank.jpg",
                                     "path": str(image)}], model="none", threshold=0.2))
    ctx = start_local_worker(queue, NoDetector(), only="detect")
    try:
        deadline = time.monotonic() + 60
        while queue.store.status(detect_id).state != "done":  # failed items still finish the job
            assert time.monotonic() < deadline, queue.store.status(detect_id)
            time.sleep(0.2)
        time.sleep(1.0)
        assert queue.store.status(train_id).state == "queued"
        assert {t.args[0] for t in queue.train_huey.pending()} == {train_id}
    finally:
        ctx.shutdown()
