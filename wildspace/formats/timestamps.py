"""Where each capture time comes from — never silently a file's copy time or the export time.

Order: EXIF ``DateTimeOriginal`` (images) or the container's ``creation_time`` (videos); else
the date and time printed in the caption bar, read by OCR
(:mod:`wildspace.media.caption_time`); else, when the user gives one, a pattern in the file
name (``--time-from-filename "%Y%m%d_%H%M%S"``). A file with none of them has no time, and
exports that need one (Camtrap DP) refuse and name those files.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping

from wildspace.errors import UsageError, WildspaceError

SOURCES = ("exif", "video-metadata", "caption-ocr", "filename", "file-mtime")
_FIELDS = {"%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}",
           "%I": r"\d{2}", "%M": r"\d{2}", "%S": r"\d{2}", "%p": r"[AaPp][Mm]", "%j": r"\d{3}",
           "%b": r"[A-Za-z]{3}", "%%": "%"}


class MissingTimesError(WildspaceError, ValueError):
    """Some files have no capture time from any source; the message lists them."""

    def __init__(self, files: list[str]):
        self.files = files
        shown = ", ".join(files[:10]) + (f" … ({len(files) - 10} more)" if len(files) > 10 else "")
        super().__init__(f"{len(files)} file(s) have no capture time (no EXIF time, no caption bar "
                         f"that OCR could read, no --time-from-filename match): {shown}. Give "
                         "--time-from-filename PATTERN, or leave Camtrap DP out (--to csv/coco)")


@dataclass(frozen=True)
class TimeOptions:
    """How to find capture times: ``ocr`` the caption bar when EXIF has none (``day_first``
    for DD-MM-YYYY bars), and ``filename_pattern`` (strptime codes, e.g. ``%Y%m%d_%H%M%S``)
    searched in the file name as a last resort."""

    ocr: bool = True
    day_first: bool = False
    filename_pattern: str | None = None


@dataclass(frozen=True)
class CaptureTime:
    """A capture time and where it came from (one of :data:`SOURCES`)."""

    time: _dt.datetime
    source: str
    detail: str = ""

    @property
    def note(self) -> str:
        """Text for ``mediaComments``: ``time from: caption-ocr (2016-05-17 9:32:34 PM …)``."""
        return f"time from: {self.source}" + (f" ({self.detail})" if self.detail else "")


def pattern_regex(pattern: str) -> re.Pattern:
    """A regex finding text that ``pattern`` (strptime codes) parses."""
    out, i = [], 0
    while i < len(pattern):
        code = pattern[i:i + 2]
        if code in _FIELDS:
            out.append(_FIELDS[code])
            i += 2
        elif pattern[i] == "%":
            raise UsageError(f"--time-from-filename: unsupported code {code!r} (use %Y %y %m %d %H %I %M %S %p %j %b)")
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def time_from_filename(name: str, pattern: str) -> _dt.datetime | None:
    """The first place in ``name``'s file name (not its folders) that ``pattern`` parses."""
    base = PurePosixPath(name).name
    for m in pattern_regex(pattern).finditer(base):
        try:
            return _dt.datetime.strptime(m.group(0), pattern)
        except ValueError:
            continue
    return None


def find_time(name: str, path: Path | None, options: TimeOptions = TimeOptions()) -> CaptureTime | None:
    """The capture time of result ``name`` (on disk at ``path``, if known), or None."""
    from wildspace.media.archives import VIDEO_EXTENSIONS

    if path is not None:
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            from wildspace.media.video import video_creation_time

            t = video_creation_time(path)
            if t is not None:
                return CaptureTime(t, "video-metadata", "container creation_time")
        else:
            from wildspace.media.exif import capture_time

            t = capture_time(path)
            if t is not None:
                return CaptureTime(t, "exif", "DateTimeOriginal")
            if options.ocr:
                from wildspace.media.caption_time import ocr_available, read_caption_time

                if ocr_available():
                    c = read_caption_time(path, day_first=options.day_first)
                    if c is not None:
                        return CaptureTime(c.time, "caption-ocr", f"{c.edge} bar: {c.text[:60]}")
    if options.filename_pattern:
        t = time_from_filename(name, options.filename_pattern)
        if t is not None:
            return CaptureTime(t, "filename", options.filename_pattern)
    return None


def file_time(path: Path) -> CaptureTime | None:
    """The file's modification time, labelled as what it is (only when a caller asks for it:
    Camtrap DP's ``missing_times="file-time"``)."""
    try:
        t = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc)
    except OSError:
        return None
    return CaptureTime(t, "file-mtime",
                       "NOT a capture time: when the file was last written, often a copy or upload time")


def find_times(names: list[str], files: Mapping[str, Path],
               options: TimeOptions = TimeOptions()) -> dict[str, CaptureTime | None]:
    """:func:`find_time` for every name."""
    return {n: find_time(n, Path(files[n]) if n in files else None, options) for n in names}
