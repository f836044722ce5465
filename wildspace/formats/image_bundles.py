"""Zips of pixels: detection crops, and images sorted into folders by what they contain."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from PIL import Image

from wildspace.atomic import atomic_path
from wildspace.formats.categories import image_status, label_of
from wildspace.media.images import ImageReadError, load_image
from wildspace.types import ImageResult

FOLDERS = {"human": "person", "vehicle": "vehicle", "animal": "animal", "unknown": "other",
           "empty": "empty", "failed": "failed"}


def write_crops_zip(results: Iterable[ImageResult], labels: tuple[str, ...],
                    files: Mapping[str, Path], path: str | Path, threshold: float,
                    margin: float = 0.0, max_pixels: int = 200_000_000) -> Path:
    """One JPEG per detection ``>= threshold``: ``<label>/<image path>_<n>_<conf>.jpg``.

    ``files`` maps each result's ``file`` to its path on disk; ``margin`` widens each box by
    that fraction of its size on every side.
    """
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for r in sorted(results, key=lambda r: r.file):
            dets = [d for d in (r.detections or ()) if d.conf >= threshold and d.frame_number is None]
            if not dets or r.file not in files:
                continue
            try:
                image = load_image(files[r.file], max_pixels=max_pixels)
            except ImageReadError:
                continue
            h, w = image.shape[:2]
            stem = str(PurePosixPath(r.file).with_suffix(""))
            for n, d in enumerate(sorted(dets, key=lambda d: -d.conf)):
                x, y, bw, bh = d.bbox_xywh_norm
                x0, y0 = max(0, int((x - margin * bw) * w)), max(0, int((y - margin * bh) * h))
                x1 = min(w, int(round((x + bw * (1 + margin)) * w)))
                y1 = min(h, int(round((y + bh * (1 + margin)) * h)))
                if x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                buf = io.BytesIO()
                Image.fromarray(image[y0:y1, x0:x1]).save(buf, "JPEG", quality=92)
                z.writestr(f"{label_of(labels, d)}/{stem}_{n}_{d.conf:.2f}.jpg", buf.getvalue())
    return path


def write_sorted_zip(results: Iterable[ImageResult], labels: tuple[str, ...],
                     files: Mapping[str, Path], path: str | Path, threshold: float) -> Path:
    """Each image under ``animal/``, ``person/``, ``vehicle/``, ``empty/`` (or ``other/``,
    ``failed/``) keeping its relative path. An image with a person goes to ``person/`` even if
    it also has animals (people come first, for privacy)."""
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for r in sorted(results, key=lambda r: r.file):
            src = files.get(r.file)
            if src is None or not Path(src).is_file():
                continue
            folder = FOLDERS[image_status(r, labels, threshold)]
            z.write(src, f"{folder}/{r.file}")
    return path
