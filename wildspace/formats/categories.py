"""What kind of thing a detector label is: animal, human, vehicle (Camtrap DP's words).

MegaDetector labels map directly. Other detectors (e.g. a COCO model imported by a user) are
mapped by name so summaries, folders and Camtrap DP observation types still make sense.
"""

from __future__ import annotations

from typing import Iterable

from wildspace.types import Detection, ImageResult

KINDS = ("animal", "human", "vehicle")
_HUMAN = {"person", "human", "people", "man", "woman"}
_VEHICLE = {"vehicle", "car", "truck", "bus", "motorcycle", "motorbike", "bicycle", "train",
            "boat", "airplane", "aeroplane"}
_ANIMAL = {"animal", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
           "giraffe"}


def label_kind(label: str) -> str:
    """``animal`` | ``human`` | ``vehicle`` | ``unknown`` for a detector label."""
    name = label.strip().lower()
    if name in _HUMAN:
        return "human"
    if name in _VEHICLE:
        return "vehicle"
    if name in _ANIMAL:
        return "animal"
    return "unknown"


def image_kinds(result: ImageResult, labels: tuple[str, ...], threshold: float) -> set[str]:
    """Kinds present in an image at ``threshold`` (empty set: a blank image)."""
    return {label_kind(label_of(labels, d)) for d in (result.detections or ()) if d.conf >= threshold}


def image_status(result: ImageResult, labels: tuple[str, ...], threshold: float) -> str:
    """One word per image: ``failed``, ``empty``, or the most important kind present
    (``human`` before ``vehicle`` before ``animal``: people matter most for privacy)."""
    if result.failed:
        return "failed"
    kinds = image_kinds(result, labels, threshold)
    for kind in ("human", "vehicle", "animal", "unknown"):
        if kind in kinds:
            return kind
    return "empty"


def summarise(results: Iterable[ImageResult], labels: tuple[str, ...], threshold: float) -> dict[str, int]:
    """Counts of images with animals / people / vehicles (an image can count in several),
    empty and failed ones."""
    counts = {"images": 0, "with animals": 0, "with people": 0, "with vehicles": 0,
              "with other objects": 0, "empty": 0, "failed": 0}
    names = {"animal": "with animals", "human": "with people", "vehicle": "with vehicles",
             "unknown": "with other objects"}
    for r in results:
        counts["images"] += 1
        if r.failed:
            counts["failed"] += 1
            continue
        kinds = image_kinds(r, labels, threshold)
        if not kinds:
            counts["empty"] += 1
        for k in {names[k] for k in kinds}:
            counts[k] += 1
    return counts


def best_by_kind(detections: Iterable[Detection], labels: tuple[str, ...]) -> dict[str, float]:
    """Highest confidence per kind (``animal``/``human``/``vehicle``/``unknown``)."""
    best: dict[str, float] = {}
    for d in detections:
        k = label_kind(label_of(labels, d))
        best[k] = max(best.get(k, 0.0), d.conf)
    return best


def label_of(labels: tuple[str, ...], d: Detection) -> str:
    return labels[d.class_id] if 0 <= d.class_id < len(labels) else str(d.class_id)
