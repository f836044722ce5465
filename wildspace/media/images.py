"""Safe image reading: EXIF orientation, mode conversion, pixel limits, clear failures."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps

ORIENTATION_TAG = 0x0112
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})

# Never let a truncated file silently become a grey-bottomed image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageReadError(ValueError):
    """A file could not be read as an image; the message is the user-facing reason."""


def load_image(path: str | Path, max_pixels: int = 200_000_000) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array of shape ``(H, W, 3)``.

    The EXIF orientation tag is applied (so boxes refer to the image as people see it).
    Grayscale, palette, CMYK, 16-bit and alpha images are converted to RGB.

    Raises:
        ImageReadError: empty, truncated, corrupt, non-image or too large (> ``max_pixels``).
    """
    return load_image_sized(path, max_pixels)[0]


def load_image_sized(path: str | Path, max_pixels: int = 200_000_000,
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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageReadError(f"image too large: {w}x{h} pixels exceeds the limit of "
                                         f"{max_pixels} pixels")
                if reduce_to and im.format == "JPEG" and max(w, h) >= 2 * reduce_to:
                    g = reduce_to / max(w, h)
                    im.draft("RGB", (math.ceil(w * g), math.ceil(h * g)))
                orientation = im.getexif().get(ORIENTATION_TAG, 1)
                im.load()
                if orientation != 1:  # exif_transpose copies the whole image even when upright
                    im = ImageOps.exif_transpose(im)
                return _to_rgb(im), ((w, h) if orientation in (5, 6, 7, 8) else (h, w))
    except ImageReadError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageReadError("not a readable image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"image too large (decompression bomb guard): {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"corrupt or truncated image: {exc}") from None
    except ImportError:
        # ultralytics wraps Image.open to try an optional HEIF plugin on unknown formats
        raise ImageReadError("not a readable image (unknown or corrupt format)") from None
    except Exception as exc:  # any other decoder error: this file fails, the batch goes on
        raise ImageReadError(f"cannot decode image: {type(exc).__name__}: {exc}") from None


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
            raise FileNotFoundError(f"input not found: {p}")
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
