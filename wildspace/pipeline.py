"""Batch detection over files: decode and letterbox in threads, group by network-input
shape, run in batches, stream results out. A file that cannot be read is a ``failure``
entry; the batch always completes."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator

from wildspace.detect.base import Detector, Prepared
from wildspace.media.images import ImageReadError, load_image
from wildspace.types import ImageResult

INFERENCE_FAILURE = "inference failure"


def detect_files(detector: Detector, files: Iterable[tuple[Path, str]], conf_threshold: float,
                 batch_size: int = 4, workers: int = 2, max_pixels: int = 200_000_000,
                 on_result: Callable[[ImageResult], None] | None = None) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per ``(path, name)`` input, in completion order.

    Args:
        files: pairs of a readable path and the name to report (relative path).
        conf_threshold: detections below it are dropped (0–1).
        batch_size: images per forward pass (images are grouped by input shape).
        workers: decode/letterbox threads.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def load(item: tuple[Path, str]) -> tuple[str, Prepared | None, str | None, tuple[int, int] | None]:
        path, name = item
        try:
            image = load_image(path, max_pixels=max_pixels)
        except ImageReadError as exc:
            return name, None, str(exc), None
        return name, detector.prepare(image), None, image.shape[:2]

    pending: dict[Hashable, list[tuple[str, Prepared]]] = collections.OrderedDict()

    def flush(key: Hashable) -> Iterator[ImageResult]:
        items = pending.pop(key)
        try:
            all_dets = detector.run([p for _, p in items], conf_threshold)
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: fail these, go on
            reason = f"{INFERENCE_FAILURE}: {type(exc).__name__}: {str(exc)[:200]}"
            for name, _ in items:
                yield ImageResult(name, None, failure=reason)
            return
        for (name, p), dets in zip(items, all_dets):
            h, w = p.orig_hw
            yield ImageResult(name, dets, width=w, height=h)

    def emit(results: Iterable[ImageResult]) -> Iterator[ImageResult]:
        for r in results:
            if on_result:
                on_result(r)
            yield r

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for name, prepared, failure, _ in _bounded_map(pool, load, files, ahead=batch_size * 2):
            if failure is not None:
                yield from emit([ImageResult(name, None, failure=failure)])
                continue
            bucket = pending.setdefault(prepared.key, [])
            bucket.append((name, prepared))
            if len(bucket) >= batch_size:
                yield from emit(flush(prepared.key))
            elif sum(len(b) for b in pending.values()) > batch_size * 4:
                yield from emit(flush(max(pending, key=lambda k: len(pending[k]))))
        for key in list(pending):
            yield from emit(flush(key))


def _bounded_map(pool: ThreadPoolExecutor, fn, items: Iterable, ahead: int) -> Iterator:
    """Like ``pool.map`` but keeps at most ``ahead`` items in flight (bounded memory)."""
    queue: collections.deque = collections.deque()
    for item in items:
        queue.append(pool.submit(fn, item))
        if len(queue) >= ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()
