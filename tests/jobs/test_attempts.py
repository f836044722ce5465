"""Bounded retries: a chunk that fails every time is recorded once as failures and the job
finishes; a chunk that makes progress is not given up on; workers dying on a chunk count too.

The queue is played by hand here (its task function called in this process, with a fake
service); test_deterministic_failure_in_a_real_worker runs a real worker process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from wildspace.jobs.queue import MAX_ATTEMPTS, JobQueue, WorkerContext
from wildspace.jobs.store import JobSpec
from wildspace.settings import load_settings


class BrokenService:
    """A detector service whose model never loads (a deterministic failure of the chunk)."""

    settings = load_settings()

    def __init__(self):
        self.calls = 0

    def load(self, **kw):
        self.calls += 1
        raise RuntimeError("model file is damaged")


@dataclass
class Ctx:
    service: object
    worker_id: str = "worker-test"
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 1


def _submit(queue: JobQueue, n=4, chunk_size=2) -> str:
    spec = JobSpec(owner="alice", kind="detect-images", model="m", chunk_size=chunk_size,
                   inputs=[{"name": f"img{i}.jpg", "path": f"/nowhere/img{i}.jpg"} for i in range(n)])
    return queue.submit(spec)


def test_a_chunk_failing_every_time_is_recorded_once_and_the_job_finishes(queue_url):
    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue)
    service = BrokenService()
    queue.context = Ctx(service)
    for attempt in range(1, MAX_ATTEMPTS):
        with pytest.raises(RuntimeError, match="damaged"):
            queue._task(job, 0)  # huey retries these
        assert queue.store.attempt(job, 0)["count"] == attempt
    queue._task(job, 0)  # the last try records the failures instead of raising
    assert service.calls == MAX_ATTEMPTS
    failures = {r.file: r.failure for r in queue.store.results(job)}
    assert set(failures) == {"img0.jpg", "img1.jpg"}
    for why in failures.values():
        assert why == f"failed {MAX_ATTEMPTS} times while processing: RuntimeError: model file is damaged"
    queue._task(job, 0)  # a copy still in the queue finds it done: no new try
    assert service.calls == MAX_ATTEMPTS and queue.store.attempt(job, 0)["count"] == MAX_ATTEMPTS
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(RuntimeError):
            queue._task(job, 1)
    queue._task(job, 1)
    status = queue.store.status(job, "alice")
    assert (status.state, status.done, status.failures) == ("done", 4, 4)
    assert queue.recover() == 0  # nothing re-queued, ever


def test_workers_dying_on_a_chunk_count_as_tries(queue_url):
    """Tries that never end (the worker was killed, or crashed in a decoder) are counted when
    the next one starts; after MAX_ATTEMPTS of them the chunk's items are failures."""
    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue)
    for _ in range(MAX_ATTEMPTS):
        queue.store.start_attempt(job, 0, done=0)  # what _task records before working
    service = BrokenService()
    queue.context = Ctx(service)
    queue._task(job, 0)
    assert service.calls == 0  # not tried a fourth time
    reasons = {r.failure for r in queue.store.results(job)}
    assert reasons == {f"failed {MAX_ATTEMPTS} times while processing: the worker stopped before finishing "
                       "it (killed or crashed)"}


def test_progress_starts_the_count_again(queue_url):
    from wildspace.types import ImageResult

    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue, n=6, chunk_size=6)
    store = queue.store
    for i in range(6):  # every try records one more item, then dies
        n = store.start_attempt(job, 0, done=i)
        assert n == 1
        store.note_attempt_error(job, 0, "killed")
        store.put_item(job, i, ImageResult(f"img{i}.jpg", []), "w")
    assert store.start_attempt(job, 0, done=6) == 1
    assert store.start_attempt(job, 0, done=6) == 2  # no progress since: counting


def test_a_cancelled_job_is_not_tried(queue_url):
    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue)
    queue.store.cancel(job, "alice")
    service = BrokenService()
    queue.context = Ctx(service)
    queue._task(job, 0)
    assert service.calls == 0 and queue.store.attempt(job, 0) == {}


@pytest.mark.slow
def test_deterministic_failure_in_a_real_worker(tmp_path, monkeypatch, workers):
    """A job whose model cannot load: a worker process gives up after MAX_ATTEMPTS tries per
    chunk (huey's retries, then recovery), and the job is done with every item a failure."""
    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("WILDSPACE_LEASE_TTL", "2")
    queue = JobQueue(load_settings())
    spec = JobSpec(owner="alice", kind="detect-images", weights=str(tmp_path / "missing.pt"), chunk_size=2,
                   inputs=[{"name": f"img{i}.jpg", "path": str(tmp_path / f"img{i}.jpg")} for i in range(3)])
    job = queue.submit(spec)
    workers.start()
    deadline = time.time() + 180
    while (s := queue.store.status(job, "alice")).state != "done":
        assert time.time() < deadline, (s, [queue.store.attempt(job, k) for k in range(2)])
        time.sleep(0.3)
    assert (s.done, s.failures) == (3, 3)
    for r in queue.store.results(job):
        assert r.failure.startswith(f"failed {MAX_ATTEMPTS} times while processing: "), r.failure
    assert [queue.store.attempt(job, k)["count"] for k in range(2)] == [MAX_ATTEMPTS] * 2
    time.sleep(3)  # a recovery pass or two later: still nothing new
    assert [queue.store.attempt(job, k)["count"] for k in range(2)] == [MAX_ATTEMPTS] * 2
    assert queue.waiting() == set()


def test_training_jobs_fail_after_bounded_errors(queue_url, monkeypatch):
    import wildspace.jobs.training as train_job

    queue = JobQueue(load_settings(), lease_ttl=30)
    spec = JobSpec(owner="alice", kind="train-classifier", inputs=[{"name": "data.zip", "path": "/x/data.zip"}],
                   options={"config": {"epochs": 1}})
    job = queue.submit(spec)
    calls = []

    def crash(store, job_id, ctx, renew):
        calls.append(job_id)
        raise MemoryError("out of memory")

    monkeypatch.setattr(train_job, "run_training", crash)
    queue.context = WorkerContext(service=BrokenService())
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(MemoryError):
            queue._task(job, 0)
    queue._task(job, 0)
    result = queue.store.result(job)
    assert result["state"] == "failed" and result["error"].startswith(f"failed {MAX_ATTEMPTS} times")
    assert queue.store.status(job, "alice").state == "failed" and len(calls) == MAX_ATTEMPTS


def test_job_inputs_are_stored_under_safe_names(tmp_path):
    """Staged inputs keep plain names; a 304-byte name or a file/folder clash is stored under a
    safe one, and every stored file reads back through its spec path."""
    from wildspace.jobs.store import JobStore

    store = JobStore(tmp_path / "storage")
    src = tmp_path / "photo.jpg"
    src.write_bytes(b"jpeg bytes")
    names = ["data.zip", "card/a.jpg", "长" * 100 + ".jpg", "clash.jpg", "clash.jpg/inside.jpg", "q?.jpg"]
    paths = {n: store.put_input("job1", src, n) for n in names}
    assert paths["data.zip"] == "stored:inputs/data.zip" and paths["card/a.jpg"] == "stored:inputs/card/a.jpg"
    assert len(set(paths.values())) == len(names)
    for n, p in paths.items():
        local = store.local_input("job1", p, tmp_path / "cache")
        assert local.read_bytes() == b"jpeg bytes", n
        assert all(len(part.encode()) <= 255 for part in local.parts)
