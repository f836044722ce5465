"""Capture times printed in a camera trap's caption bar, read with Tesseract OCR.

Most camera traps stamp each frame with a bar along the top or bottom edge: Reconyx
``2016-05-17 9:32:34 PM`` (top, white on black), Bushnell ``03-03-2015 06:10:52`` (bottom,
black on white), Cuddeback ``10/22/2018 5:50 AM`` (bottom, no seconds), Covert and
ScoutGuard ``12.17.2012 12:18:38``. This module finds that bar (rows of one flat colour at the
edge), reads it with Tesseract (Debian ``tesseract-ocr`` through ``pytesseract``), and parses
the date and time, checking that they are plausible (a real calendar date, a real clock time,
not in the future, not before 1995).

Day/month order: year-first dates are unambiguous; otherwise a first number above 12 means
day-first, a second above 12 month-first, and when both are 12 or below the date is read
month-first (the US order Bushnell, Cuddeback, Covert and ScoutGuard print) unless
``day_first=True``.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildspace.errors import WildspaceError
from wildspace.media.images import ImageReadError, open_image

MIN_YEAR = 1995
_WHITELIST = "0123456789-/.:APM "
_TEXT_HEIGHTS = (36, 28, 48)  # px: Tesseract reads these fonts best around these heights


class CaptionOCRUnavailable(WildspaceError, RuntimeError):
    """Tesseract (``apt-get install tesseract-ocr``) or pytesseract is missing."""


@dataclass(frozen=True)
class CaptionTime:
    """A time read from a caption bar: ``time`` (naive: camera clocks keep local time),
    the OCR ``text`` it came from, which ``edge`` (top/bottom) and whether the bar showed
    seconds."""

    time: _dt.datetime
    text: str
    edge: str
    has_seconds: bool


def ocr_available() -> bool:
    """True when pytesseract imports and the ``tesseract`` program is on PATH."""
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


def read_caption_time(path: str | Path, day_first: bool = False,
                      now: _dt.datetime | None = None) -> CaptionTime | None:
    """The capture time in the image's caption bar, or None when no plausible one is read.

    Raises:
        CaptionOCRUnavailable: Tesseract is not installed.
    """
    if not ocr_available():
        raise CaptionOCRUnavailable("caption-bar OCR needs Tesseract: apt-get install tesseract-ocr "
                                    "and pip install pytesseract")
    try:
        with open_image(path) as im:
            gray = np.asarray(im.convert("L"))
    except (ImageReadError, OSError, ValueError):
        return None
    for band, edge, full in _bands(gray):
        for height in _TEXT_HEIGHTS if full else _TEXT_HEIGHTS[:2]:
            for whitelist in (True, False):
                text = _ocr(band, whitelist, height)
                found = parse_caption_text(text, day_first=day_first, now=now)
                if found is not None:
                    t, secs = found
                    return CaptionTime(t, " ".join(text.split()), edge, secs)
    return None


def _bands(gray: np.ndarray):
    """Caption bars at the top and bottom edges, then (for cameras that print the time in a
    box over the picture, e.g. Covert) the halves of a strip along each edge."""
    for e in ("top", "bottom"):
        b = caption_band(gray, e)
        if b is not None:
            yield b, e, True
    h, w = gray.shape
    k = max(int(h * 0.07), 16)
    for edge, strip in (("bottom", gray[h - k:]), ("top", gray[:k])):
        for part in (strip[:, w // 2:], strip[:, : w // 2]):
            if not _has_flat_box(part):
                continue
            light = part if np.median(part) > 127 else 255 - part
            yield np.ascontiguousarray(light), edge, False


def _has_flat_box(part: np.ndarray) -> bool:
    """A third of the strip is one flat grey (the box a Covert or ScoutGuard prints on)."""
    hist = np.bincount(part.ravel(), minlength=256)
    peak = int(hist.argmax())
    return hist[max(peak - 6, 0):peak + 7].sum() > 0.33 * part.size


def caption_band(gray: np.ndarray, edge: str) -> np.ndarray | None:
    """The caption bar at ``edge`` as dark text on white (None when there is no flat bar):
    rows from the edge inward whose pixels are mostly the bar's colour (near black or near
    white, taken from the outermost rows), trimmed to the rows holding text, with a margin."""
    h = gray.shape[0]
    limit = max(int(h * 0.12), 8)
    outer = gray[:2] if edge == "top" else gray[h - 2:]
    colour = float(np.median(outer))
    if 70 <= colour <= 185:
        return None
    rows = range(limit) if edge == "top" else range(h - 1, h - 1 - limit, -1)
    n = 0
    for r in rows:
        if (np.abs(gray[r].astype(np.int16) - colour) < 24).mean() <= 0.55:
            break
        n += 1
    if n < 8:
        return None
    band = gray[:n] if edge == "top" else gray[h - n:]
    if colour < 128:
        band = 255 - band
    ink = (band < 128).mean(axis=1) > 0.004
    if not ink.any():
        return None
    idx = np.flatnonzero(ink)
    top, bottom = max(idx[0] - 4, 0), min(idx[-1] + 5, band.shape[0])
    return np.ascontiguousarray(band[top:bottom])


def _ocr(band: np.ndarray, whitelist: bool, text_height: int) -> str:
    import pytesseract
    from PIL import Image, ImageOps

    h, w = band.shape
    scale = min(max(text_height / max(h - 8, 1), 0.3), 2.0)
    im = Image.fromarray(band).resize((max(int(w * scale), 1), max(int(h * scale), 1)), Image.Resampling.LANCZOS)
    im = ImageOps.expand(im, 24, fill=255)
    config = "--psm 7" + (f" -c tessedit_char_whitelist='{_WHITELIST}'" if whitelist else "")
    try:
        return pytesseract.image_to_string(im, config=config, timeout=30)
    except RuntimeError:  # pytesseract's timeout
        return ""


_DASH = re.compile(r"[\u2010-\u2015=~_]")
_YMD = re.compile(r"(?<!\d)(\d{4})\s?[-/.]\s?(\d{1,2})\s?[-/.]\s?(\d{1,2})(?!\d)")
_XXY = re.compile(r"(?<!\d)(\d{1,2})\s?[-/.]\s?(\d{1,2})\s?[-/.]\s?(\d{4})(?!\d)")
_TIME = re.compile(r"(?<![\d:])(\d{1,2})\s?:\s?(\d{2})(?:\s?:\s?(\d{2}))?(?:\s*([AaPp])\.?\s?[Mm]\.?)?"
                   r"(?=\s|$)")  # a clock is followed by a space or the end: "17i322" is no time


def parse_caption_text(text: str, day_first: bool = False,
                       now: _dt.datetime | None = None) -> tuple[_dt.datetime, bool] | None:
    """``(datetime, has_seconds)`` from caption-bar text, or None when no plausible date and
    time is in it (see the module docstring for the day/month rule)."""
    text = _DASH.sub("-", text)
    now = now or _dt.datetime.now()
    for date, end in _dates(text, day_first):
        for m in _TIME.finditer(text, end):
            t = _clock(m)
            if t is None:
                continue
            stamp = _dt.datetime.combine(date, t[0])
            if stamp <= now + _dt.timedelta(days=1):
                return stamp, t[1]
    return None


def _dates(text: str, day_first: bool):
    found = []
    for m in _YMD.finditer(text):
        found.append((m.start(), _date(int(m[1]), int(m[2]), int(m[3])), m.end()))
    for m in _XXY.finditer(text):
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        if a > 12 or (day_first and b <= 12):
            d = _date(y, b, a)
        else:
            d = _date(y, a, b)
        found.append((m.start(), d, m.end()))
    for _, d, end in sorted(found, key=lambda x: x[0]):
        if d is not None:
            yield d, end


def _date(y: int, m: int, d: int) -> _dt.date | None:
    if not MIN_YEAR <= y <= _dt.date.today().year + 1:
        return None
    try:
        return _dt.date(y, m, d)
    except ValueError:
        return None


def _clock(m: re.Match) -> tuple[_dt.time, bool] | None:
    hour, minute = int(m[1]), int(m[2])
    second = int(m[3]) if m[3] is not None else 0
    if m[4]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m[4].upper() == "P" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return _dt.time(hour, minute, second), m[3] is not None
