"""Build a gallery from a folder of images and an identities table; enrol new animals.

The identities table is a CSV with a header. Required: ``file`` (path relative to the images
folder; ``image``/``path``/``filename`` also accepted) and ``identity`` (``id``/``individual``/
``name``). Optional: ``viewpoint`` (``flank``/``side``/``orientation``: left/right), ``bbox``
(``x y w h`` normalised, space/comma separated or a JSON list), ``date`` (a date or
date-time; a ``time`` column is joined to it), ``location`` (``station``/``site``). Station and
date-time define the encounters that honest evaluations leave out (:mod:`wildspace.reid.events`).
Unreadable images become failures; the rest of the gallery is built.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from wildspace.reid.gallery import GalleryData, GalleryError, Record, encode_jpeg, normalise_viewpoint
from wildspace.reid.local_features import LocalFeatureConfig, extract

_ALIASES = {
    "file": ("file", "image", "path", "filename", "file_name", "image_path"),
    "identity": ("identity", "id", "individual", "name", "individual_id"),
    "viewpoint": ("viewpoint", "flank", "side", "orientation"),
    "bbox": ("bbox", "box"),
    "date": ("date", "datetime", "timestamp"),
    "location": ("location", "station", "site"),
    "time": ("time", "time_of_day"),
}

# crop_fn(rgb) -> (crop_rgb, bbox_xywh_norm) or None when no animal is found
CropFn = Callable[[np.ndarray], "tuple[np.ndarray, tuple[float, float, float, float]] | None"]


@dataclass(frozen=True)
class TableRow:
    file: str
    identity: str
    viewpoint: str = ""
    bbox: tuple[float, float, float, float] | None = None
    date: str = ""
    location: str = ""
    extra: tuple = ()


def _parse_bbox(text: str, where: str):
    text = (text or "").strip()
    if not text:
        return None
    try:
        vals = json.loads(text) if text.startswith("[") else [float(v) for v in
                                                                text.replace(",", " ").split()]
        vals = tuple(float(v) for v in vals)
    except (ValueError, TypeError):
        raise GalleryError(f"{where}: bbox '{text}' is not 4 numbers x y w h") from None
    if len(vals) != 4 or not all(0.0 <= v <= 1.0 for v in vals) or vals[2] <= 0 or vals[3] <= 0:
        raise GalleryError(f"{where}: bbox '{text}' must be 4 numbers x y w h, normalised to 0..1")
    return vals


def read_identity_table(path: Path) -> list[TableRow]:
    """Parse the identities CSV (see the module docstring).

    Raises:
        GalleryError: missing columns, empty identity, malformed bbox (with the line number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise GalleryError(f"cannot read identities table {path.name}: {why}") from None
    reader = csv.DictReader(text.splitlines())
    header = {(h or "").strip().lower(): h for h in (reader.fieldnames or [])}
    cols = {}
    for key, names in _ALIASES.items():
        cols[key] = next((header[n] for n in names if n in header), None)
    for key in ("file", "identity"):
        if cols[key] is None:
            raise GalleryError(f"{path.name}: needs a '{key}' column (accepted names: "
                               f"{', '.join(_ALIASES[key])}); found {', '.join(header) or 'none'}")
    rows = []
    for n, raw in enumerate(reader, start=2):
        where = f"{path.name} line {n}"
        get = lambda k, raw=raw: (raw.get(cols[k]) or "").strip() if cols[k] else ""  # noqa: E731
        if not get("file"):
            continue
        if not get("identity"):
            raise GalleryError(f"{where}: empty identity for {get('file')}")
        date = " ".join(v for v in (get("date"), get("time")) if v)  # a time column joins the date
        rows.append(TableRow(get("file"), get("identity"), normalise_viewpoint(get("viewpoint")),
                             _parse_bbox(get("bbox"), where), date, get("location")))
    if not rows:
        raise GalleryError(f"{path.name}: no rows")
    return rows


def crop_box(rgb: np.ndarray, bbox, margin: float = 0.1) -> np.ndarray:
    """Crop ``bbox`` (x, y, w, h normalised) with ``margin`` (fraction of the box) around it."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = bbox
    x0 = max(0, int((x - margin * bw) * w))
    y0 = max(0, int((y - margin * bh) * h))
    x1 = min(w, int(np.ceil((x + bw * (1 + margin)) * w)))
    y1 = min(h, int(np.ceil((y + bh * (1 + margin)) * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return rgb
    return rgb[y0:y1, x0:x1]


def prepare_query(rgb: np.ndarray, bbox=None, crop_fn: CropFn | None = None):
    """The crop to match and its box: a given box, else the detector's, else the frame."""
    if bbox is not None:
        return crop_box(rgb, bbox), tuple(bbox)
    if crop_fn is not None:
        found = crop_fn(rgb)
        if found is not None:
            return found
    return rgb, None


def build_gallery(images_dir: Path, rows: list[TableRow], name: str, *, embedder=None,
                  crop_fn: CropFn | None = None, local: bool = True,
                  local_config: LocalFeatureConfig = LocalFeatureConfig(),
                  max_pixels: int = 200_000_000, progress=None, learned=None
                  ) -> tuple[GalleryData, list[tuple[str, str]]]:
    """Read, crop, embed and extract features for every row.

    ``learned`` (a :class:`wildspace.reid.learned.LearnedMatcher`) also extracts its keypoints
    into :attr:`GalleryData.learned` (animal chips as they are, whole frames without captions).

    Returns:
        ``(gallery, failures)``; failures are ``(file, reason)`` pairs. The gallery is not
        calibrated yet (see :class:`wildspace.reid.matching.Matcher`).
    """
    from wildspace.media.images import ImageReadError, load_image

    images_dir = Path(images_dir).resolve()
    records, blobs, crops, failures = [], [], [], []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if progress:
            progress(i, len(rows), row.file)
        path = (images_dir / row.file).resolve()
        if images_dir not in path.parents:
            failures.append((row.file, "path leaves the images folder"))
            continue
        try:
            rgb = load_image(path, max_pixels=max_pixels)
        except ImageReadError as exc:
            failures.append((row.file, str(exc)))
            continue
        crop, bbox = prepare_query(rgb, row.bbox, crop_fn)
        image_id = row.file if row.file not in seen else f"{row.file}#{i}"
        seen.add(image_id)
        records.append(Record(image_id, row.identity, row.viewpoint, bbox, row.date,
                              row.location, row.file))
        blobs.append(encode_jpeg(crop))
        crops.append(crop)
    if not records:
        raise GalleryError(f"no readable images for the gallery ({len(failures)} failed)")
    gallery = GalleryData(name=name, records=records, images=blobs)
    if local:
        from wildspace.reid.feature_cache import default_cache, extract_many

        # cached by content hash (a rebuild or an evaluation never extracts twice), in parallel
        gallery.features = extract_many(crops, local_config, cache=default_cache())
    if learned is not None:
        gallery.learned = learned.extract_many(crops, [r.bbox is not None for r in records])
    if embedder is not None:
        gallery.embeddings = embedder.embed(crops)
        gallery.embedder = embedder.name
    return gallery, failures


def enrol(gallery: GalleryData, crop: np.ndarray, identity: str, *, viewpoint: str = "",
          bbox=None, date: str = "", location: str = "", file: str = "", embedder=None,
          local_config: LocalFeatureConfig = LocalFeatureConfig()) -> GalleryData:
    """A new gallery with one more image (a new animal or a new photo of a known one).

    Raises:
        GalleryError: empty identity, or the gallery has embeddings but no embedder was given.
    """
    identity = (identity or "").strip()
    if not identity:
        raise GalleryError("give the animal a name (identity) to enrol it")
    if gallery.embeddings is not None and embedder is None:
        raise GalleryError(f"gallery '{gallery.name}' uses embedder '{gallery.embedder}'; "
                           "load it to enrol")
    n = len(gallery)
    rec = Record(f"enrolled-{n}-{identity}", identity, normalise_viewpoint(viewpoint),
                 tuple(bbox) if bbox else None, date, location, file)
    new = replace(gallery, records=gallery.records + [rec], images=gallery.images + [encode_jpeg(crop)],
                  calibrations={}, learned=None)
    if gallery.features is not None:
        new.features = gallery.features + [extract(crop, local_config)]
    if gallery.embeddings is not None:
        new.embeddings = np.concatenate([gallery.embeddings, embedder.embed([crop])])
    return new
