"""Recovery re-queues exactly the chunks that would otherwise be lost, on both backends.

No worker runs here: the tests play the queue by hand (take a task off it, hold a lease) to
reach the windows a SIGKILL can hit, which the end-to-end kill test only reaches by chance.
"""

from __future__ import annotations

from wildspace.jobs.queue import JobQueue
from wildspace.jobs.store import JobSpec
from wildspace.settings import load_settings


def _submit(queue: JobQueue, n=6, chunk_size=2) -> str:
    spec = JobSpec(owner="alice", kind="detect-images", model="m", chunk_size=chunk_size,
                   inputs=[{"name": f"img{i}.jpg", "path": f"/x/img{i}.jpg"} for i in range(n)])
    return queue.submit(spec)


def test_queued_chunks_are_not_queued_again(queue_url):
    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue)
    assert queue.waiting() == {(job, 0), (job, 1), (job, 2)}
    assert queue.recover() == 0
    assert len(queue.huey.pending()) == 3


def test_a_task_taken_off_the_queue_by_a_worker_that_then_died_is_requeued(queue_url):
    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue)
    task = queue.huey.dequeue()  # the worker took it ... and was killed before leasing the chunk
    lost = (task.args[0], task.args[1])
    assert lost[0] == job and lost not in queue.waiting()
    assert queue.recover() == 1
    assert queue.waiting() == {(job, 0), (job, 1), (job, 2)}


def test_a_leased_chunk_is_left_alone_until_its_lease_expires(queue_url):
    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue)
    task = queue.huey.dequeue()
    key = f"{task.args[0]}:{task.args[1]}"
    assert queue.leases.acquire(key, "worker-1", 0.2)  # a worker is on it
    assert queue.recover() == 0
    import time

    time.sleep(0.4)  # ... and was killed: its lease runs out
    assert queue.recover() == 1
    assert (job, task.args[1]) in queue.waiting()


def test_finished_chunks_are_not_requeued(queue_url):
    from wildspace.types import ImageResult

    queue = JobQueue(load_settings(), lease_ttl=30)
    job = _submit(queue, n=2)
    queue.huey.dequeue()
    for i in range(2):
        queue.store.put_item(job, i, ImageResult(file=f"img{i}.jpg", detections=[]), "worker-1")
    assert queue.recover() == 0
