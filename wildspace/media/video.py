"""Video reading (sampled frames) and browser-playable H.264 writing, with PyAV.

Frame numbers are 0-based indexes of decoded frames, as in MegaDetector's video output.
A video that cannot be opened or yields no frame raises :class:`VideoReadError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from wildspace.errors import UsageError, WildspaceError


class VideoReadError(WildspaceError, ValueError):
    """The file cannot be decoded as a video; the message is the user-facing reason."""


@dataclass(frozen=True)
class Sampling:
    """Which frames to analyse: every ``every_n_frames``-th frame, or one frame every
    ``every_seconds`` seconds (whichever is given; default every frame)."""

    every_n_frames: int | None = None
    every_seconds: float | None = None
    max_frames: int = 10_000

    def __post_init__(self):
        if self.every_n_frames is not None and self.every_n_frames < 1:
            raise UsageError("every_n_frames must be >= 1")
        if self.every_seconds is not None and self.every_seconds <= 0:
            raise UsageError("every_seconds must be > 0")


@dataclass(frozen=True)
class VideoFrame:
    number: int
    seconds: float
    image: np.ndarray  # RGB uint8 H x W x 3


def video_fps(path: str | Path) -> float:
    """Average frame rate of the first video stream (frames per second)."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise VideoReadError("no video stream in the file")
            s = c.streams.video[0]
            rate = s.average_rate or s.base_rate or s.guessed_rate
            return float(rate) if rate else 0.0
    except VideoReadError:
        raise
    except Exception as exc:  # av.error.* and friends
        raise VideoReadError(f"cannot open video: {type(exc).__name__}: {exc}") from None


def video_seconds(path: str | Path) -> float | None:
    """Length of the video in seconds from its headers (``None`` when it does not say)."""
    import av

    try:
        with av.open(str(path)) as c:
            if c.duration:
                return c.duration / av.time_base
            s = c.streams.video[0] if c.streams.video else None
            if s is not None and s.duration and s.time_base:
                return float(s.duration * s.time_base)
    except Exception as exc:  # av.error.* and friends
        raise VideoReadError(f"cannot open video: {type(exc).__name__}: {exc}") from None
    return None


def video_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` of the first video stream from the headers, or None."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return None
            cc = c.streams.video[0].codec_context
            return (int(cc.width), int(cc.height)) if cc.width and cc.height else None
    except Exception:  # av.error.*: unreadable, no size
        return None


def video_creation_time(path: str | Path):
    """The container's ``creation_time`` tag (MP4/MOV/AVI metadata) as a datetime, or None
    when absent, unreadable or implausible (before 1995 or in the future; many cameras write
    1904-01-01 or 1970-01-01 when the clock is unset)."""
    import datetime as _dt

    import av

    try:
        with av.open(str(path)) as c:
            tags = dict(c.metadata or {})
            if c.streams.video:
                tags = {**dict(c.streams.video[0].metadata or {}), **tags}
    except Exception:  # av.error.* and friends: no time, the detection reports the failure
        return None
    raw = tags.get("creation_time")
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        t = _dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    now = _dt.datetime.now(t.tzinfo)
    if t.year < 1995 or t > now + _dt.timedelta(days=1):
        return None
    return t


def _decoded(path: str | Path) -> Iterator[tuple[int, float, object]]:
    """Every decoded frame of the first video stream as ``(index, seconds, av frame)``.

    A corrupt tail ends the iteration (what was decoded is kept); a video with no decodable
    frame raises :class:`VideoReadError`."""
    import av

    fps = video_fps(path)
    decoded = 0
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in c.decode(stream):
                n = decoded
                decoded += 1
                yield n, float(frame.time) if frame.time is not None else (n / fps if fps else 0.0), frame
    except Exception as exc:
        if decoded == 0:
            raise VideoReadError(f"cannot decode video: {type(exc).__name__}: {exc}") from None
        # a corrupt tail: keep what was decoded
    if decoded == 0:
        raise VideoReadError("no decodable frames in the video")


def _rgb(frame, n: int, t: float, max_pixels: int) -> VideoFrame:
    if frame.width * frame.height > max_pixels:
        raise VideoReadError(f"video frames too large: {frame.width}x{frame.height} exceeds "
                             f"the limit of {max_pixels} pixels")
    return VideoFrame(n, t, frame.to_ndarray(format="rgb24"))


def read_frames(path: str | Path, sampling: Sampling = Sampling(),
                max_pixels: int = 50_000_000, max_seconds: float | None = None) -> Iterator[VideoFrame]:
    """Decode the video and yield only the sampled frames as RGB arrays.

    With ``max_seconds``, a video whose headers say it is longer is refused before decoding,
    and decoding stops with an error at a frame past that time (headers can lie).

    Raises:
        VideoReadError: unreadable file, no video stream, no decodable frame, frames larger
            than ``max_pixels`` or a video longer than ``max_seconds``.
    """
    if max_seconds is not None:
        length = video_seconds(path)
        if length is not None and length > max_seconds:
            raise VideoReadError(_too_long(length, max_seconds))
    step_s = sampling.every_seconds
    next_t = 0.0
    yielded = 0
    for n, t, frame in _decoded(path):
        if max_seconds is not None and t > max_seconds:
            raise VideoReadError(_too_long(t, max_seconds))
        if sampling.every_n_frames is not None:
            take = n % sampling.every_n_frames == 0
        elif step_s is not None:
            take = t + 1e-6 >= next_t
            if take:
                next_t = (math.floor(t / step_s + 1e-6) + 1) * step_s
        else:
            take = True
        if not take:
            continue
        yield _rgb(frame, n, t, max_pixels)
        yielded += 1
        if yielded >= sampling.max_frames:
            break


def read_frames_at(path: str | Path, numbers: Iterable[int], max_pixels: int = 50_000_000) -> Iterator[VideoFrame]:
    """Decode the video once and yield the frames ``numbers`` (0-based decoded-frame indexes, as
    :func:`read_frames` numbers them), in order; decoding stops after the last one. Frames the
    video does not have are left out. Raises :class:`VideoReadError` like :func:`read_frames`."""
    wanted = {int(n) for n in numbers if int(n) >= 0}
    if not wanted:
        return
    last = max(wanted)
    for n, t, frame in _decoded(path):
        if n in wanted:
            yield _rgb(frame, n, t, max_pixels)
        if n >= last:
            break


def _too_long(seconds: float, limit: float) -> str:
    return (f"video too long: {seconds:.1f} s exceeds the limit of {limit:g} s "
            "(WILDSPACE_MAX_VIDEO_SECONDS)")


def write_h264(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> Path:
    """Encode RGB frames to an MP4 (H.264, yuv420p, faststart) that browsers play.

    Odd widths/heights are padded by one pixel (yuv420p needs even sizes).
    """
    import av

    path = Path(path)
    rate = Fraction(max(fps, 0.1)).limit_denominator(1000)
    container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
    stream = None
    try:
        for img in frames:
            h, w = img.shape[:2]
            if h % 2 or w % 2:
                img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = img.shape[1], img.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "23"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise UsageError("no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return path
