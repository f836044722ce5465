"""The worker queue: huey, embedded (SQLite file, nothing to start) or Redis.

A job is split into chunks of inputs; each chunk is one huey task, so several workers (one
per GPU, on one or many machines sharing a Redis broker) split a batch between them. A worker
takes a chunk's lease, skips inputs already on disk, records each result as it is made and
renews the lease. A worker that dies leaves an expiring lease: recovery (at worker start and
every ``lease_ttl / 2`` seconds) re-queues chunks that are unfinished, unleased and not waiting
in the queue, and the next worker resumes them where they stopped. "Waiting" is read from the
queue itself, so a worker killed between taking a task off the queue and leasing its chunk
loses nothing; a chunk queued twice is harmless (the second run finds it leased or done).

Retries are bounded: every try at a chunk is counted in the job store (``attempts/``), and a
try that records new items starts the count again. After ``max_attempts`` tries in a row
without progress (errors, or a worker that died on the chunk), the chunk's missing items are
recorded as failures ("failed 3 times while processing: <error>") and the job finishes. A
training job fails the same way after ``max_attempts`` errors.

    WILDSPACE_QUEUE    redis://host:6379/0 for Redis; default sqlite in the data dir (Settings.queue_url)
    WILDSPACE_STORAGE  job storage root (default <data dir>/storage); must be shared by the
                       app and the workers
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wildspace.errors import UsageError
from wildspace.jobs.leases import Leases, RedisLeases, SqliteLeases
from wildspace.jobs.store import TRAIN_KINDS, JobSpec, JobStore
from wildspace.settings import Settings, load_settings

if TYPE_CHECKING:
    from huey.consumer import Consumer

log = logging.getLogger("wildspace.jobs")
MAX_ATTEMPTS = 3  # tries at a chunk in a row without progress before its items are failures


@dataclass
class WorkerContext:
    """What a worker process holds: its services (models stay loaded across jobs)."""

    service: object  # DetectorService
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int | None = None  # None: wildspace.detect.batch_size.auto_batch_size
    consumer: Consumer | None = None

    def shutdown(self) -> None:
        """Stop after the items in hand (used by in-process workers)."""
        self.stop.set()
        if self.consumer is not None:
            self.consumer.stop(graceful=True)


def queue_url(settings: Settings, url: str | None = None) -> str:
    return url or settings.queue_url or f"sqlite:///{settings.home / 'queue.db'}"


def storage_root(settings: Settings) -> Path:
    return settings.storage or settings.home / "storage"


class JobQueue:
    def __init__(self, settings: Settings | None = None, url: str | None = None,
                 store: JobStore | None = None, lease_ttl: float | None = None,
                 max_attempts: int = MAX_ATTEMPTS):
        from huey import RedisHuey, SqliteHuey

        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self.settings = settings or load_settings()
        self.url = queue_url(self.settings, url)
        self.lease_ttl = float(lease_ttl or self.settings.lease_ttl)
        self.store = store or JobStore(storage_root(self.settings))
        if self.url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            self.huey = RedisHuey("wildspace", url=self.url)
            self.train_huey = RedisHuey("wildspace-train", url=self.url)
            self.leases: Leases = RedisLeases(redis.Redis.from_url(self.url))
        elif self.url.startswith("sqlite:///"):
            path = Path(self.url[len("sqlite:///"):])  # sqlite:////abs/path or sqlite:///rel/path
            path.parent.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey("wildspace", filename=str(path))
            self.train_huey = SqliteHuey("wildspace-train", filename=str(path))
            self.leases = SqliteLeases(path.with_suffix(".leases.db"))
        else:
            raise UsageError(f"queue URL '{self.url}' is not redis://… or sqlite:///…")
        self.context: WorkerContext | None = None
        self._run_chunk = self.huey.task(retries=2, retry_delay=2, name="wildspace.run_chunk")(self._task)
        # training has its own queue, so a worker can take detection only (the app's in-process
        # worker) or training only (a separate process: training never runs inside the app)
        self._run_training = self.train_huey.task(retries=2, retry_delay=2,
                                                  name="wildspace.run_training")(self._task)

    # -- submitting ---------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        self.store.create(spec)
        self.enqueue_pending(spec.id)
        return spec.id

    def enqueue_pending(self, job_id: str) -> None:
        """Queue every chunk of a stored job that still has inputs without a result."""
        spec = self.store.spec(job_id)
        done = self.store.done_indexes(job_id)
        for k, chunk in enumerate(spec.chunks()):
            if any(i not in done for i in chunk):
                self._enqueue(job_id, k)
        self.store.assemble(job_id)

    def _enqueue(self, job_id: str, chunk: int) -> None:
        if self.store.spec(job_id).kind in TRAIN_KINDS:
            self._run_training(job_id, chunk)
        else:
            self._run_chunk(job_id, chunk)

    def waiting(self) -> set[tuple[str, int]]:
        """``(job id, chunk)`` of every chunk task in the queues or their retry schedules."""
        out = set()
        names = {self._run_chunk.name, self._run_training.name}
        for huey in (self.huey, self.train_huey):
            for task in [*huey.pending(), *huey.scheduled()]:
                if task.name in names and len(task.args) == 2:
                    out.add((task.args[0], int(task.args[1])))
        return out

    def recover(self) -> int:
        """Re-queue unfinished chunks nobody holds or waits for; returns how many."""
        n = 0
        waiting = None
        for spec in self.store.unfinished():
            done = self.store.done_indexes(spec.id)
            for k, chunk in enumerate(spec.chunks()):
                if all(i in done for i in chunk):
                    continue
                if waiting is None:  # read the queue only when some chunk is unfinished
                    waiting = self.waiting()
                if (spec.id, k) in waiting or self.leases.holder(f"{spec.id}:{k}"):
                    continue
                self._enqueue(spec.id, k)
                n += 1
            if len(done) >= spec.total:
                self.store.assemble(spec.id)
        return n

    # -- working ------------------------------------------------------------------------
    def _task(self, job_id: str, chunk: int) -> None:
        ctx = self.context
        if ctx is None:
            raise RuntimeError("this process is not a worker (no WorkerContext)")
        key = f"{job_id}:{chunk}"
        if not self.leases.acquire(key, ctx.worker_id, self.lease_ttl):
            return  # another worker has it
        renew = lambda: self.leases.renew(key, ctx.worker_id, self.lease_ttl)  # noqa: E731
        try:
            if self.store.spec(job_id).kind in TRAIN_KINDS:
                self._train(job_id, ctx, renew)
            else:
                self._detect(job_id, chunk, ctx, renew)
        finally:
            self.leases.release(key, ctx.worker_id)
        self.store.assemble(job_id)

    def _detect(self, job_id: str, chunk: int, ctx: WorkerContext, renew) -> None:
        """One try at a detection chunk, counted; the last allowed one never raises."""
        from wildspace.jobs.runner import run_chunk

        store = self.store
        indexes = store.spec(job_id).chunks()[chunk]
        done = len(set(indexes) & store.done_indexes(job_id))
        if done == len(indexes) or store.cancelled(job_id):
            return
        tries = store.start_attempt(job_id, chunk, done)
        if tries > self.max_attempts:  # the earlier tries died without a word (killed, crashed)
            self._give_up(job_id, chunk, ctx, tries - 1)
            return
        try:
            run_chunk(store, job_id, chunk, ctx, renew=renew)
        except Exception as exc:
            store.note_attempt_error(job_id, chunk, f"{type(exc).__name__}: {exc}")
            if tries < self.max_attempts:
                raise  # huey retries it (retry_delay), then recovery does
            log.warning("job %s chunk %d failed %d times; recording its items as failures", job_id, chunk, tries)
            self._give_up(job_id, chunk, ctx, tries)

    def _give_up(self, job_id: str, chunk: int, ctx: WorkerContext, tries: int) -> None:
        """Record every item of the chunk still without a result as a failure with the reason."""
        from wildspace.types import ImageResult

        store = self.store
        spec = store.spec(job_id)
        error = (store.attempt(job_id, chunk).get("error")
                 or "the worker stopped before finishing it (killed or crashed)")
        reason = f"failed {tries} times while processing: {error}"
        done = store.done_indexes(job_id)
        for i in spec.chunks()[chunk]:
            if i not in done:
                store.put_item(job_id, i, ImageResult(spec.inputs[i]["name"], None, failure=reason), ctx.worker_id)

    def _train(self, job_id: str, ctx: WorkerContext, renew) -> None:
        """Run a training job; after ``max_attempts`` errors it is failed instead of retried."""
        from wildspace.jobs.training import run_training

        try:
            run_training(self.store, job_id, ctx, renew)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            errors = self.store.note_attempt_error(job_id, 0, error)
            if errors < self.max_attempts:
                raise
            self.store.put_result(job_id, {"state": "failed",
                                           "error": f"failed {errors} times while processing: {error}"})

    def consumer(self, context: WorkerContext, concurrency: int = 1, only: str | None = None):
        """Huey consumers for this process (threads; the model is shared and stays loaded):
        detection chunks and training jobs, or ``only="detect"`` / ``only="train"``.

        They install no signal handlers: the caller decides what SIGTERM means (the worker
        command: finish the item in hand, then stop; the app: its own shutdown).
        """
        from huey.consumer import Consumer

        class _Consumer(Consumer):
            def _set_signal_handlers(self):
                pass

        if only not in (None, "detect", "train"):
            raise UsageError(f"only must be 'detect' or 'train', got {only!r}")
        self.context = context
        hueys = [h for kind, h in (("detect", self.huey), ("train", self.train_huey)) if only in (None, kind)]
        return Consumers([_Consumer(h, workers=max(1, concurrency), worker_type="thread",
                                    periodic=False, check_worker_health=False) for h in hueys])

    def start_recovery_loop(self, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.is_set():
                try:
                    self.recover()
                except Exception:  # keep recovering; a broken job must not stop the worker
                    log.exception("recovery pass failed")
                stop.wait(max(1.0, self.lease_ttl / 2))

        t = threading.Thread(target=loop, name="wildspace-recovery", daemon=True)
        t.start()
        return t


class Consumers:
    """Several huey consumers started and stopped together."""

    def __init__(self, consumers: list):
        self.consumers = consumers

    def start(self) -> None:
        for c in self.consumers:
            c.start()

    def stop(self, graceful: bool = True) -> None:
        for c in self.consumers:
            c.stop(graceful=graceful)


def start_local_worker(queue: JobQueue, service, concurrency: int = 1, only: str | None = None) -> WorkerContext:
    """Run a worker inside this process; the app passes ``only="detect"`` (training never runs
    in the app process: a separate ``worker --only train`` takes it)."""
    ctx = WorkerContext(service=service)
    consumer = queue.consumer(ctx, concurrency, only)
    ctx.consumer = consumer
    consumer.start()
    queue.start_recovery_loop(ctx.stop)
    return ctx
