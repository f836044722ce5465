"""Videos reviewed frame by frame: each sampled frame of a video run is a review item
(``<video>#frame<number>``) with the boxes the detector found on it, shown from a JPEG of the
frame decoded from the video on first use; the corrected MegaDetector *video* JSON puts the
frames back together (one entry per video, boxes with their ``frame_number``).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from PIL import Image

from wildspace.atomic import atomic_path
from wildspace.formats.exports import ResultSet
from wildspace.formats.megadetector import detection_to_dict, image_to_dict
from wildspace.media.video import VideoReadError, read_frames_at
from wildspace.types import Detection, ImageResult

SEPARATOR = "#frame"
DONE = ".done"
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def frame_key(video: str, number: int) -> str:
    """The review item of frame ``number`` of ``video`` (sorts by video, then frame)."""
    return f"{video}{SEPARATOR}{int(number):06d}"


def split_key(key: str) -> tuple[str, int] | None:
    """``(video, frame number)`` of a frame's review item, else ``None``."""
    video, sep, n = key.rpartition(SEPARATOR)
    return (video, int(n)) if sep and video and n.isdigit() else None


def is_video_results(rs: ResultSet) -> bool:
    """Whether the results are of videos (entries with ``frames_processed``)."""
    return any(r.frames_processed is not None for r in rs.results)


def frame_results(rs: ResultSet) -> list[ImageResult]:
    """One result per sampled frame of each video (a failed video stays one failed item)."""
    out = []
    for r in rs.results:
        if r.failed:
            out.append(r)
            continue
        by_frame: dict[int, list[Detection]] = {}
        for d in r.detections or ():
            by_frame.setdefault(int(d.frame_number or 0), []).append(d)
        numbers = list(r.frames_processed) if r.frames_processed is not None else sorted(by_frame)
        for n in numbers:
            out.append(ImageResult(frame_key(r.file, n), tuple(by_frame.get(int(n), ())), width=r.width,
                                   height=r.height))
    return out


class VideoFrames:
    """JPEGs of the sampled frames of a run's videos under ``folder``: a video is decoded once,
    when one of its frames is first asked for (later asks find the files)."""

    def __init__(self, folder: Path, videos: dict[str, Path], results: ResultSet, max_pixels: int):
        self.folder, self.max_pixels = Path(folder), max_pixels
        self.videos = {name: Path(p) for name, p in videos.items()}
        self.index = {r.file: i for i, r in enumerate(sorted(results.results, key=lambda r: r.file))}
        self.frames = {r.file: sorted(int(n) for n in r.frames_processed or ()) for r in results.results}

    def path(self, key: str) -> Path | None:
        where = split_key(key)
        if where is None or where[0] not in self.videos or where[0] not in self.index:
            return None
        video, n = where
        folder = self.folder / f"{self.index[video]:04d}"
        target = folder / f"{n:06d}.jpg"
        if target.is_file():
            return target
        with _guard:
            lock = _locks.setdefault(str(folder), threading.Lock())
        with lock:
            if not target.is_file() and not (folder / DONE).is_file():
                self._extract(video, folder)
        return target if target.is_file() else None

    def _extract(self, video: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for frame in read_frames_at(self.videos[video], self.frames.get(video, ()), self.max_pixels):
                with atomic_path(folder / f"{frame.number:06d}.jpg") as tmp:
                    Image.fromarray(frame.image).save(tmp, format="JPEG", quality=92)
        except (VideoReadError, OSError):
            pass  # the frames not written show as "image not available"; the boxes stay reviewable
        (folder / DONE).write_text("", encoding="utf-8")


def corrected_video_document(opened, kept_boxes, doc: dict) -> dict:
    """``doc`` (an empty MegaDetector document of the source) with one entry per video: a video
    none of whose frames a reviewer touched as the model left it; else its boxes frame by frame
    (touched frames as corrected: ``kept_boxes(state)`` gives their detection dicts; the others as
    the model gave them), ``original_detections`` (the model's, unchanged) and ``review``: per
    touched frame its status, reviewer and time, and how many of the sampled frames are reviewed."""
    videos: ResultSet = opened.source.extra["video_results"]
    states = opened.states.states
    images = []
    for r in videos.results:
        frames = [(n, states.get(frame_key(r.file, n))) for n in (r.frames_processed or ())]
        touched = [(n, s) for n, s in frames if s is not None and s.touched]
        if r.failed or not touched:
            images.append(image_to_dict(r))
            continue
        im = image_to_dict(ImageResult(r.file, (), width=r.width, height=r.height, frame_rate=r.frame_rate,
                                       frames_processed=r.frames_processed))
        dets: list[dict] = []
        for n, s in frames:
            if s is None:
                continue
            if not s.touched:
                dets += [detection_to_dict(d) for d in sorted(s.result.detections or (), key=lambda d: -d.conf)]
            elif s.status not in ("empty", "misfire"):
                dets += [{**d, "frame_number": int(n)} for d in kept_boxes(s)]
        im["detections"] = dets
        im["original_detections"] = [detection_to_dict(d) for d in sorted(
            r.detections or (), key=lambda d: (d.frame_number or 0, -d.conf))]
        im["review"] = {"frames": [{"frame": int(n), "status": s.status, "reviewer": s.reviewer,
                                    "reviewed_at": s.at} for n, s in touched],
                        "reviewed_frames": sum(1 for _, s in frames if s is not None and s.reviewed),
                        "sampled_frames": len(frames)}
        images.append(im)
    doc["images"] = sorted(images, key=lambda d: d["file"])
    return doc


def video_source_results(rs: ResultSet) -> ResultSet:
    """``rs`` with one result per sampled frame (see :func:`frame_results`)."""
    return replace(rs, results=frame_results(rs), files={})
