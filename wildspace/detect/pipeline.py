"""Batch detection over files: decode and letterbox in threads, group by network-input
shape, run in batches, stream results out. A file that cannot be read, letterboxed or run
is a ``failure`` entry; the batch always completes (a batch whose forward pass raises is run
again image by image, so only the image that fails is a failure).

Decoding runs ahead of inference in a thread pool (at most a few batches in flight), so the
network never waits for JPEG decoding and memory does not grow with the number of files:
results are yielded as soon as their batch is done. A detector with ``parallel_batches`` > 1
(several ONNX Runtime sessions) gets that many batches at once, from as many threads. With
``fast_decode`` big JPEGs are decoded at reduced size
(:func:`wildspace.media.images.load_image_sized`)."""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, TypeVar

from wildspace.detect.base import Detector, Prepared
from wildspace.errors import UsageError
from wildspace.media.images import ImageReadError, load_image_sized
from wildspace.types import ImageResult

INFERENCE_FAILURE = "inference failure"


def detect_files(detector: Detector, files: Iterable[tuple[Path, str]], conf_threshold: float,
                 batch_size: int | None = None, workers: int = 2, max_pixels: int = 200_000_000,
                 on_result: Callable[[ImageResult], None] | None = None,
                 fast_decode: bool = False) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per ``(path, name)`` input, in completion order.

    ``files`` is consumed lazily (a generator over millions of paths is fine).

    Args:
        files: pairs of a readable path and the name to report (relative path).
        conf_threshold: detections below it are dropped (0–1).
        batch_size: images per forward pass (images are grouped by input shape); ``None``
            chooses one (:func:`wildspace.detect.batch_size.auto_batch_size`).
        workers: decode/letterbox threads.
        fast_decode: decode big JPEGs at reduced size (opt-in; see module docstring).
    """
    if batch_size is None:
        from wildspace.detect.batch_size import auto_batch_size

        batch_size = auto_batch_size(detector)
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    reduce_to = detector.info.input_size if fast_decode else None

    def load(item: tuple[Path, str]) -> tuple[str, Prepared | None, str | None, tuple[int, int] | None]:
        path, name = item
        try:
            image, full_hw = load_image_sized(path, max_pixels=max_pixels, reduce_to=reduce_to)
        except ImageReadError as exc:
            return name, None, str(exc), None
        except Exception as exc:  # load_image_sized maps decoder errors; anything else is this file's too
            return name, None, f"cannot decode image: {_brief(exc)}", None
        try:
            return name, detector.prepare(image), None, full_hw
        except Exception as exc:  # e.g. OpenCV refusing a degenerate resize: this file fails
            return name, None, f"cannot prepare image for the detector: {_brief(exc)}", None

    pending: dict[Hashable, list[tuple[str, Prepared, tuple[int, int]]]] = collections.OrderedDict()

    def run(items: list[tuple[str, Prepared, tuple[int, int]]]) -> Iterator[ImageResult]:
        try:
            all_dets = detector.run([p for _, p, _ in items], conf_threshold)
            if len(all_dets) != len(items):
                raise RuntimeError(f"the detector returned {len(all_dets)} results for {len(items)} images")
        except Exception as exc:  # e.g. out of memory, or one image the network cannot take
            if len(items) > 1:  # again one by one: only the image that fails is a failure
                for item in items:
                    yield from run([item])
                return
            yield ImageResult(items[0][0], None, failure=f"{INFERENCE_FAILURE}: {_brief(exc)}")
            return
        for (name, _, (h, w)), dets in zip(items, all_dets):
            yield ImageResult(name, dets, width=w, height=h)

    # detectors with several network sessions (ExportedYoloDetector) run that many batches at
    # once; the others one at a time, here
    parallel = max(1, int(getattr(detector, "parallel_batches", 1)))
    in_flight: collections.deque[Future] = collections.deque()

    def flush(key: Hashable) -> Iterator[ImageResult]:
        items = pending.pop(key)
        if net_pool is None:
            yield from run(items)
            return
        in_flight.append(net_pool.submit(lambda: list(run(items))))
        while in_flight and (len(in_flight) >= parallel or in_flight[0].done()):
            yield from in_flight.popleft().result()

    def drain() -> Iterator[ImageResult]:
        while in_flight:
            yield from in_flight.popleft().result()

    def emit(results: Iterable[ImageResult]) -> Iterator[ImageResult]:
        for r in results:
            if on_result:
                on_result(r)
            yield r

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            (ThreadPoolExecutor(max_workers=parallel) if parallel > 1 else contextlib.nullcontext()) as net_pool:
        for name, prepared, failure, full_hw in _bounded_map(pool, load, files, ahead=max(batch_size, workers) * 2):
            if failure is not None:
                yield from emit([ImageResult(name, None, failure=failure)])
                continue
            bucket = pending.setdefault(prepared.key, [])
            bucket.append((name, prepared, full_hw))
            if len(bucket) >= batch_size:
                yield from emit(flush(prepared.key))
            elif sum(len(b) for b in pending.values()) > batch_size * 4:
                yield from emit(flush(max(pending, key=lambda k: len(pending[k]))))
        for key in list(pending):
            yield from emit(flush(key))
        yield from emit(drain())


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _bounded_map(pool: ThreadPoolExecutor, fn, items: Iterable, ahead: int) -> Iterator:
    """Like ``pool.map`` but keeps at most ``ahead`` items in flight (bounded memory)."""
    queue: collections.deque = collections.deque()
    for item in items:
        queue.append(pool.submit(fn, item))
        if len(queue) >= ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


T = TypeVar("T")


def prefetched(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    For producers that do real work per item (video decoding): the consumer's work overlaps
    with it. An exception in the producer is raised in the consumer; when the consumer
    stops early the producer is told to stop.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator: release its files in this thread
                close()

    thread = threading.Thread(target=produce, name="wildspace-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
