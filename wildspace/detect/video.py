"""Detection on videos: sampled frames in batches, MegaDetector video results, and an
annotated browser-playable video.

Decoding (and letterboxing) of the sampled frames runs in a background thread, ahead of the
network; frames that are not sampled are decoded (codecs need them) but never converted to
RGB or prepared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

from wildspace.detect.base import Detector, Prepared
from wildspace.detect.pipeline import prefetched
from wildspace.media.draw import draw_detections
from wildspace.media.video import Sampling, VideoFrame, VideoReadError, read_frames, video_fps, write_h264
from wildspace.types import Detection, ImageResult


def detect_video(detector: Detector, path: str | Path, name: str, conf_threshold: float,
                 sampling: Sampling = Sampling(), batch_size: int = 8,
                 annotated_path: str | Path | None = None,
                 on_frames: Callable[[int], None] | None = None, species=None,
                 max_seconds: float | None = None, max_pixels: int = 50_000_000,
                 keep_above: float | None = None) -> ImageResult:
    """Run ``detector`` on the sampled frames of one video.

    Returns an :class:`ImageResult` with ``frame_rate``, ``frames_processed`` and
    detections carrying ``frame_number``; or a ``failure`` when the video cannot be decoded
    (never an exception for a bad file). With ``annotated_path`` an H.264 MP4 of the sampled
    frames with boxes drawn is written there. With ``species`` (a
    :class:`wildspace.classify.species.SpeciesStep`) animal boxes get ``classifications``.
    A video longer than ``max_seconds`` or with frames over ``max_pixels`` is a failure.
    With ``keep_above`` below ``conf_threshold`` the result keeps the boxes down to it (for
    review); the annotated video draws only those at or above ``conf_threshold``.
    """
    try:
        fps = video_fps(path)
    except VideoReadError as exc:
        return ImageResult(name, None, failure=_no_paths(str(exc), path, name))
    run_at = conf_threshold if keep_above is None else min(conf_threshold, keep_above)
    processed: list[int] = []
    detections: list[Detection] = []
    size: tuple[int, int] | None = None

    def annotated() -> Iterator:
        nonlocal size
        sampled = read_frames(path, sampling, max_pixels, max_seconds)
        frames = prefetched(((f, detector.prepare(f.image)) for f in sampled), depth=2 * batch_size)
        for batch in _batches(frames, batch_size):
            results = detector.run([p for _, p in batch], run_at)
            for (frame, _), dets in zip(batch, results):
                processed.append(frame.number)
                size = frame.image.shape[:2]
                if species is not None:
                    dets = species.on_image(frame.image, dets, detector.info.labels)
                detections.extend(Detection(d.class_id, d.conf, d.bbox_xywh_norm, frame.number, d.classifications)
                                  for d in dets)
                if annotated_path is not None:
                    shown = tuple(d for d in dets if d.conf >= conf_threshold)
                    yield _as_array(draw_detections(frame.image, shown, detector.info.labels,
                                                    species.caption if species is not None else None))
            if on_frames:
                on_frames(len(processed))

    try:
        if annotated_path is not None:
            write_h264(annotated(), annotated_path, _output_fps(fps, sampling))
        else:
            for _ in annotated():
                pass
    except VideoReadError as exc:
        return ImageResult(name, None, failure=_no_paths(str(exc), path, name), frame_rate=fps or None)
    except ValueError as exc:  # e.g. nothing to write
        return ImageResult(name, None, failure=_no_paths(f"video failure: {exc}", path, name),
                           frame_rate=fps or None)
    h, w = size or (None, None)
    return ImageResult(name, tuple(detections), width=w, height=h, frame_rate=fps,
                       frames_processed=tuple(processed))


_QUOTED_PATH = re.compile(r"""(['"])(?:[A-Za-z]:)?[/\\][^'"]*\1""")


def _no_paths(message: str, path: str | Path, name: str) -> str:
    """A failure message without the server's paths (PyAV quotes the file it opened)."""
    for p in {str(path), str(Path(path).resolve())}:
        message = message.replace(p, name)
    return _QUOTED_PATH.sub(lambda m: m[1] + Path(m[0][1:-1]).name + m[1], message)


def _batches(frames: Iterator[tuple[VideoFrame, Prepared]],
             n: int) -> Iterator[list[tuple[VideoFrame, Prepared]]]:
    batch: list[tuple[VideoFrame, Prepared]] = []
    for f in frames:
        batch.append(f)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def _output_fps(fps: float, sampling: Sampling) -> float:
    if sampling.every_n_frames:
        return max(fps / sampling.every_n_frames, 0.5) if fps else 1.0
    if sampling.every_seconds:
        return max(1.0 / sampling.every_seconds, 0.5)
    return fps or 1.0


def _as_array(pil_image):
    import numpy as np

    return np.asarray(pil_image)
