"""Camera metadata from EXIF: capture time and GPS position (None when absent or broken).

Files are opened with :func:`wildspace.media.images.open_image` (format allowlist, limits) and
EXIF is read with its bounds (:func:`wildspace.media.images.read_exif`); nothing is decoded."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from wildspace.media.images import open_image, read_exif

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_DATETIME = 0x0132


def capture_time(path: str | Path) -> _dt.datetime | None:
    """``DateTimeOriginal`` (else ``DateTime``), timezone-aware when the camera wrote an
    ``OffsetTimeOriginal``, naive otherwise (most camera traps keep local time)."""
    try:
        with open_image(path, check_shape=False) as im:
            exif = read_exif(im)
            sub = exif.get_ifd(_EXIF_IFD)
            raw = sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
            offset = sub.get(_OFFSET_TIME_ORIGINAL)
    except Exception:  # unreadable file or EXIF: no time
        return None
    if not isinstance(raw, str):
        return None
    try:
        t = _dt.datetime.strptime(raw.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if isinstance(offset, str):
        try:
            t = t.replace(tzinfo=_dt.datetime.strptime(offset.strip(), "%z").tzinfo)
        except ValueError:
            pass
    return t


def gps_position(path: str | Path) -> tuple[float, float] | None:
    """``(latitude, longitude)`` in decimal degrees from the GPS IFD, if present."""
    try:
        with open_image(path, check_shape=False) as im:
            gps = read_exif(im).get_ifd(_GPS_IFD)
        lat = _degrees(gps[2], gps.get(1, "N"))
        lon = _degrees(gps[4], gps.get(3, "E"))
    except Exception:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _degrees(dms, ref: str) -> float:
    d, m, s = (float(x) for x in dms)
    v = d + m / 60 + s / 3600
    return -v if ref in ("S", "W") else v


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` as displayed (EXIF rotation applied), from the header only."""
    try:
        with open_image(path, check_shape=False) as im:
            w, h = im.size
            orientation = read_exif(im).get(0x0112, 1)
    except Exception:
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
