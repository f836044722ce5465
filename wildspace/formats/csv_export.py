"""CSV exports: one row per detection, and one row per image (spreadsheets, R, pandas).

Every cell goes through :func:`safe_cell`: text a spreadsheet would run as a formula (it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, e.g. a file called
``=cmd|' /C calc'!A0.jpg``) gets a leading ``'`` (OWASP's advice for CSV injection); plain
numbers such as ``-0.5`` stay numbers.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable, Mapping

from wildspace.atomic import atomic_path
from wildspace.formats.categories import best_by_kind, image_status, label_kind, label_of
from wildspace.types import ImageResult

DETECTION_COLUMNS = ["file", "frame_number", "category", "label", "kind", "conf",
                     "bbox_x", "bbox_y", "bbox_width", "bbox_height"]
SPECIES_COLUMNS = ["species", "species_conf"]
IMAGE_COLUMNS = ["file", "status", "detections", "max_conf_animal", "max_conf_human",
                 "max_conf_vehicle", "top_label", "top_conf", "failure"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value):
    """``value`` as a CSV cell no spreadsheet runs: text starting with ``= + - @``, a tab or a
    CR gets a leading ``'`` unless it is a plain decimal number; other values are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(row):
    """:func:`safe_cell` over a list of cells or the values of a dict row."""
    if isinstance(row, Mapping):
        return {k: safe_cell(v) for k, v in row.items()}
    return [safe_cell(v) for v in row]



def write_detections_csv(results: Iterable[ImageResult], labels: tuple[str, ...], path: str | Path,
                         threshold: float = 0.0, species: Mapping[str, str] | None = None,
                         species_threshold: float = 0.0) -> Path:
    """One row per detection with ``conf >= threshold``; bbox normalised (x, y = top-left).

    With ``species`` (MegaDetector ``classification_categories``) two more columns give each
    box's best classification, ``unknown`` below ``species_threshold``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(DETECTION_COLUMNS + (SPECIES_COLUMNS if species else []))
        for r in sorted(results, key=lambda r: r.file):
            for d in sorted(r.detections or (), key=lambda d: (d.frame_number or 0, -d.conf)):
                if d.conf < threshold:
                    continue
                label = label_of(labels, d)
                row = [r.file, "" if d.frame_number is None else d.frame_number, d.category,
                       label, label_kind(label), f"{d.conf:.3f}", *(f"{v:.4f}" for v in d.bbox_xywh_norm)]
                if species:
                    row += _species_cells(d, species, species_threshold)
                w.writerow(safe_row(row))
    return path


def _species_cells(d, species: Mapping[str, str], threshold: float) -> list[str]:
    if not d.classifications:
        return ["", ""]
    cid, conf = d.classifications[0]
    return ["unknown" if conf < threshold else species.get(cid, cid), f"{conf:.3f}"]


def write_images_csv(results: Iterable[ImageResult], labels: tuple[str, ...], path: str | Path,
                     threshold: float) -> Path:
    """One row per file: status at ``threshold`` (failed/empty/animal/human/vehicle/unknown),
    number of detections, best confidence per kind, the top label."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(IMAGE_COLUMNS)
        for r in sorted(results, key=lambda r: r.file):
            dets = [d for d in (r.detections or ()) if d.conf >= threshold]
            best = best_by_kind(dets, labels)
            top = max(dets, key=lambda d: d.conf, default=None)
            w.writerow(safe_row([
                r.file, image_status(r, labels, threshold), len(dets),
                *(f"{best[k]:.3f}" if k in best else "" for k in ("animal", "human", "vehicle")),
                label_of(labels, top) if top else "", f"{top.conf:.3f}" if top else "",
                r.failure or ""]))
    return path
