"""Safe image reading: an allowlist of formats, EXIF orientation, mode conversion, pixel,
shape and metadata limits, clear failures.

Every user image goes through :func:`open_image`: only the formats in :data:`IMAGE_FORMATS` are
tried (an EPS, PDF or any other format is refused from its first bytes, before a plugin runs,
so Ghostscript or another program is never started), the pixel limit is ours
(``max_pixels``, ``WILDSPACE_MAX_PIXELS``; Pillow's own bomb limit is raised to it), and
degenerate shapes (more than :data:`MAX_ASPECT`:1, a side under :data:`MIN_SIDE` px) fail.
Metadata is bounded: an EXIF block over :data:`MAX_EXIF_BYTES`, or one whose tags claim more
data than it holds, is skipped (orientation then upright, capture time and GPS unknown); a
TIFF whose tags claim more data than the file holds is refused; PNG text chunks are capped
(:data:`MAX_PNG_TEXT_BYTES` in all).
"""

from __future__ import annotations

import math
import re
import struct
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, PngImagePlugin

from wildspace.errors import NotFound, WildspaceError

ORIENTATION_TAG = 0x0112
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
# Pillow format names tried by open_image. JPEG covers MPO (phones' multi-picture JPEGs). No
# GIF: no camera or phone writes it, it is not among IMAGE_EXTENSIONS, and every extra decoder
# is attack surface. Never EPS/PS/PDF (Ghostscript) or anything else that runs a program.
IMAGE_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
DEFAULT_MAX_PIXELS = 200_000_000
MAX_ASPECT = 100  # long side / short side: a 100:1 strip still letterboxes to >= 6 px at 640
MIN_SIDE = 4  # px: anything smaller holds no animal, and a 1-px side is a degenerate resize
MAX_EXIF_BYTES = 1 << 20  # a JPEG's EXIF is at most 64 KB; PNG/WebP/TIFF ones from cameras are small
MAX_PNG_TEXT_BYTES = 8 << 20  # all text chunks of one PNG (Pillow: 64 MB); more is a failure

# Never let a truncated file silently become a grey-bottomed image.
ImageFile.LOAD_TRUNCATED_IMAGES = False
PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, MAX_PNG_TEXT_BYTES)


class ImageReadError(WildspaceError, ValueError):
    """A file could not be read as an image; the message is the user-facing reason."""


def _genuine_open():
    """Pillow's own ``Image.open``. ultralytics replaces it with a wrapper that, on an
    unidentified file, tries to pip-install a HEIF plugin; that must never happen for an upload."""
    fn = Image.open
    if getattr(fn, "__module__", None) != Image.__name__:
        inner = getattr(sys.modules.get(getattr(fn, "__module__", "") or ""), "_image_open", None)
        if callable(inner) and getattr(inner, "__module__", None) == Image.__name__:
            return inner
    return fn


_PIL_OPEN = _genuine_open()


def _allow_pixels(max_pixels: int) -> None:
    """Make Pillow's decompression-bomb limit at least ours, so ours is the one that applies
    (Pillow warns above ``MAX_IMAGE_PIXELS`` and refuses above twice that)."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)


def _too_large(pixels: int | str, max_pixels: int) -> ImageReadError:
    return ImageReadError(f"image too large: {pixels} pixels exceeds the limit of {max_pixels} pixels "
                          "(WILDSPACE_MAX_PIXELS)")


def _sniff(prefix: bytes) -> str | None:
    """The Pillow format whose signature ``prefix`` has, if it is not an accepted one (the
    plugins' ``_accept`` checks only compare bytes; no plugin code beyond that runs)."""
    Image.init()
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        try:
            if accept is not None and accept(prefix):
                return None if fmt in IMAGE_FORMATS else fmt
        except Exception:  # a signature check that wants more bytes
            continue
    return None


def open_image(source: str | Path | IO[bytes], max_pixels: int = DEFAULT_MAX_PIXELS,
               check_shape: bool = True) -> Image.Image:
    """Open an image's header with the format allowlist and the limits (nothing decoded yet).

    ``source`` is a path or a binary file object. Use the result as a context manager
    (``with open_image(p) as im``), like ``Image.open``.

    Raises:
        ImageReadError: not an accepted format, unreadable, over ``max_pixels``, a TIFF with
            impossible metadata, or (``check_shape``) a degenerate shape.
    """
    _allow_pixels(max_pixels)
    # never let a truncated file silently become a grey-bottomed image, whatever another
    # library in this process set (megadetector-utils turns this on at import)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        if isinstance(source, (str, Path)):
            try:
                f = open(source, "rb")
            except OSError as exc:
                raise ImageReadError(f"cannot open file: {exc.strerror or exc}") from None
            with f:
                prefix = f.read(16)
                if _is_tiff(prefix):
                    f.seek(0)
                    _check_tiff(f)
        else:
            start = source.tell()
            prefix = source.read(16)
            if _is_tiff(prefix):
                source.seek(start)
                _check_tiff(source)
            source.seek(start)
        im = _PIL_OPEN(source, formats=IMAGE_FORMATS)
    except Image.UnidentifiedImageError:
        fmt = _sniff(prefix)
        if fmt:
            raise ImageReadError(f"not an accepted image format (looks like {fmt}; accepted: JPEG, PNG, "
                                 "TIFF, WebP, BMP)") from None
        raise ImageReadError("not a readable image (unknown or corrupt format)") from None
    except Exception as exc:
        raise _read_error(exc, max_pixels) from None
    try:
        w, h = im.size
        if w * h > max_pixels:
            raise _too_large(f"{w}x{h}", max_pixels)
        if check_shape:
            check_shape_of(w, h)
    except BaseException:
        im.close()
        raise
    return im


def check_shape_of(w: int, h: int) -> None:
    """Refuse degenerate image shapes (see :data:`MAX_ASPECT`, :data:`MIN_SIDE`)."""
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageReadError(f"extreme aspect ratio: {w}x{h} pixels (more than {MAX_ASPECT}:1)")
    if min(w, h) < MIN_SIDE:
        raise ImageReadError(f"image too small: {w}x{h} pixels (each side must be at least {MIN_SIDE} px)")


def _read_error(exc: BaseException, max_pixels: int) -> ImageReadError:
    """The user-facing reason for an exception raised while opening or decoding."""
    if isinstance(exc, ImageReadError):
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        m = re.search(r"\((\d+) pixels\)", str(exc))
        return _too_large(m.group(1) if m else "more than " + str(max_pixels), max_pixels)
    if isinstance(exc, ValueError) and "text chunk" in str(exc):  # PngImagePlugin.MAX_TEXT_MEMORY
        return ImageReadError(f"image metadata too large: PNG text chunks over {MAX_PNG_TEXT_BYTES} bytes")
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError, struct.error)):
        return ImageReadError(f"corrupt or truncated image: {getattr(exc, 'strerror', None) or exc}")
    return ImageReadError(f"cannot decode image: {type(exc).__name__}: {exc}")


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array of shape ``(H, W, 3)``.

    The EXIF orientation tag is applied (so boxes refer to the image as people see it).
    Grayscale, palette, CMYK, 16-bit and alpha images are converted to RGB.

    Raises:
        ImageReadError: empty, truncated, corrupt, not an accepted format, too large
            (> ``max_pixels``) or a degenerate shape.
    """
    return load_image_sized(path, max_pixels)[0]


def load_image_sized(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
                     reduce_to: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Like :func:`load_image`, optionally decoding big JPEGs at reduced size.

    With ``reduce_to`` (px), a JPEG whose long side is at least twice that is decoded by
    libjpeg at 1/2, 1/4 or 1/8 scale (PIL ``draft``), the largest reduction that keeps the
    long side >= ``reduce_to``: a detector letterboxing to ``reduce_to`` shrinks it anyway,
    and decoding costs a fraction. Pixels differ slightly from a full decode + resize (the
    DCT scaling averages, a plain bilinear resize does not), so detections can move a little.

    Returns:
        The RGB image and the full-size ``(height, width)`` of the file (EXIF-rotated),
        which is the image's own size unless it was reduced.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot open file: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    try:
        with open_image(path, max_pixels) as im:
            w, h = im.size
            if reduce_to and im.format in ("JPEG", "MPO") and max(w, h) >= 2 * reduce_to:
                g = reduce_to / max(w, h)
                im.draft("RGB", (math.ceil(w * g), math.ceil(h * g)))
            im.load()
            orientation = read_exif(im).get(ORIENTATION_TAG, 1)
            if orientation != 1:  # exif_transpose copies the whole image even when upright
                im = ImageOps.exif_transpose(im)
            return _to_rgb(im), ((w, h) if orientation in (5, 6, 7, 8) else (h, w))
    except Exception as exc:  # any decoder error: this file fails, the batch goes on
        raise _read_error(exc, max_pixels) from None


def read_exif(im: Image.Image) -> Image.Exif:
    """The image's EXIF (plus XMP orientation, as Pillow reads it), or an empty one when it has
    none or it is over the limits.

    Bounded: an EXIF block larger than :data:`MAX_EXIF_BYTES`, or whose tags declare more data
    than the block holds (overlapping tags: Pillow would copy the same bytes once per tag), is
    skipped. A PNG is never decoded for this (an EXIF chunk after its pixel data is seen only
    once the image was loaded)."""
    raw = im.info.get("exif")
    if raw is None and "Raw profile type exif" in im.info:
        try:
            raw = bytes.fromhex("".join(str(im.info["Raw profile type exif"]).split("\n")[3:]))
        except ValueError:
            return Image.Exif()
    if raw is not None and (len(raw) > MAX_EXIF_BYTES or not _exif_block_ok(bytes(raw))):
        return Image.Exif()
    try:  # the base method: PngImageFile.getexif would decode the whole image first
        return Image.Image.getexif(im)
    except Exception:  # broken EXIF: treat as absent
        return Image.Exif()


_TIFF_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
              16: 8, 17: 8, 18: 8}  # bytes per value of each TIFF field type Pillow reads
_SUB_IFDS = (0x8769, 0x8825)  # EXIF and GPS: the sub-directories read for time and position


def _is_tiff(prefix: bytes) -> bool:
    return prefix[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _tiff_declared_bytes(read, size: int) -> int | None:
    """Bytes of tag data declared by a TIFF structure's first directory and its EXIF and GPS
    sub-directories (what Pillow reads), or None when the structure is not readable.

    ``read(offset, n)`` returns up to ``n`` bytes at ``offset`` of a structure of ``size``
    bytes. The work is bounded: at most 65535 entries per directory, three directories."""
    head = read(0, 16)
    if len(head) < 8 or not _is_tiff(head):
        return None
    e = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")
    if big:
        if len(head) < 16:
            return None
        first = struct.unpack(e + "Q", head[8:16])[0]
        count_fmt, entry, entry_fmt, inline = "Q", 20, "HHQ8s", 8
    else:
        first = struct.unpack(e + "L", head[4:8])[0]
        count_fmt, entry, entry_fmt, inline = "H", 12, "HHL4s", 4
    count_size = struct.calcsize(count_fmt)
    total, todo, seen = 0, [first], set[int]()
    while todo and len(seen) < 3:
        offset = todo.pop()
        if offset in seen or not 0 < offset < size:
            continue
        seen.add(offset)
        raw = read(offset, count_size)
        if len(raw) < count_size:
            continue
        n = struct.unpack(e + count_fmt, raw)[0]
        if n > 65535:
            return size + 1  # no real directory has that many tags (Pillow would loop over them)
        table = read(offset + count_size, n * entry)
        for k in range(len(table) // entry):
            tag, typ, count, value = struct.unpack(e + entry_fmt, table[k * entry:(k + 1) * entry])
            nbytes = count * _TIFF_UNIT.get(typ, 0)
            if nbytes > inline:
                total += nbytes
            if tag in _SUB_IFDS and len(seen) + len(todo) < 3 and typ in (4, 13, 16, 18):
                wide = typ in (16, 18)
                todo.append(struct.unpack(e + ("Q" if wide else "L"), value[: 8 if wide else 4])[0])
    return total


def _exif_block_ok(raw: bytes) -> bool:
    """An EXIF block whose directories do not claim more data than the block holds."""
    if raw.startswith(b"Exif\x00\x00"):
        raw = raw[6:]
    total = _tiff_declared_bytes(lambda o, n: raw[o:o + n], len(raw))
    return total is None or total <= len(raw)


def _check_tiff(f: IO[bytes]) -> None:
    """Refuse a TIFF whose first directory's tags claim more data than the file holds:
    overlapping tags make Pillow copy the same bytes once per tag while opening it."""
    start = f.tell()
    f.seek(0, 2)
    size = f.tell() - start

    def read(offset: int, n: int) -> bytes:
        f.seek(start + offset)
        return f.read(n)

    try:
        total = _tiff_declared_bytes(read, size)
    finally:
        f.seek(start)
    if total is not None and total > size:
        raise ImageReadError(f"image metadata too large: TIFF tags claim {total} bytes in a "
                             f"{size}-byte file")


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = max(arr.max(), 1.0)
        im = Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def list_images(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str]]:
    """Expand inputs into ``(absolute path, relative name)`` pairs, in sorted order.

    A folder is searched recursively for image extensions (its files are named relative to
    it); a ``.txt`` file lists one path per line (relative to the list's folder); any other
    path is taken as one image (it may turn out unreadable, which is a failure, not an error).

    Raises:
        FileNotFoundError: an input path does not exist.
    """
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise NotFound(f"input not found: {p}")
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    yield f, f.relative_to(p).as_posix()
        elif p.suffix.lower() == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                f = Path(line)
                if not f.is_absolute():
                    f = p.parent / f
                yield f, line
        else:
            yield p, p.name
