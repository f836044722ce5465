"""Detection precision/recall against human boxes (COCO json or YOLO txt ground truth).

Predictions are a MegaDetector batch JSON (from wildspace or any tool). Images are matched
by file stem (name without folder and extension). Per image, predictions with ``conf >=
threshold`` are taken best first and each is matched greedily to the unmatched ground-truth
box with the highest IoU, if that IoU is ``>= iou`` (0.5 by default): a match is a true
positive, an unmatched prediction a false positive, an unmatched ground-truth box a false
negative. ``AP`` is the all-point interpolated area under the precision/recall curve over
every confidence.

Classes (``classes``): MegaDetector's classes differ from ground-truth species, so the
default ``animal`` mode compares *animal* predictions (MegaDetector ``animal``; COCO animal
names for other detectors) with every ground-truth box that is not a person or vehicle;
``any`` ignores classes altogether; ``same`` matches only equal class names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from wildspace.errors import NotFound, UsageError
from wildspace.formats.categories import label_kind

CLASS_MODES = ("animal", "any", "same")


@dataclass(frozen=True)
class Box:
    """``bbox`` is ``(x_min, y_min, width, height)`` normalised; ``conf`` 1.0 for ground truth."""

    image: str
    label: str
    bbox: tuple[float, float, float, float]
    conf: float = 1.0


def _stem(name: str) -> str:
    return Path(str(name).replace("\\", "/")).stem


def read_coco(path: str | Path) -> tuple[list[str], list[Box]]:
    """Image keys and boxes from a COCO json (pixel ``bbox`` normalised by the image size).

    Raises:
        ValueError: not COCO detection json, or images without ``width``/``height``.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not {"images", "annotations"} <= set(doc):
        raise UsageError(f"{path}: not a COCO file (needs 'images' and 'annotations')")
    cats = {c["id"]: str(c.get("name", c["id"])) for c in doc.get("categories", [])}
    images = {}
    for im in doc["images"]:
        if not im.get("width") or not im.get("height"):
            raise UsageError(f"{path}: image {im.get('file_name')} has no width/height")
        images[im["id"]] = im
    boxes = []
    for a in doc["annotations"]:
        if "bbox" not in a:
            continue  # image-level labels (COCO Camera Traps 'empty') have no box
        im = images.get(a["image_id"])
        if im is None:
            raise UsageError(f"{path}: annotation {a.get('id')} names unknown image {a['image_id']}")
        x, y, w, h = (float(v) for v in a["bbox"])
        W, H = float(im["width"]), float(im["height"])
        boxes.append(Box(_stem(im["file_name"]), cats.get(a.get("category_id"), "animal"),
                         (x / W, y / H, w / W, h / H)))
    return [_stem(im["file_name"]) for im in images.values()], boxes


def read_yolo(labels_dir: str | Path, names: Sequence[str] | None = None) -> tuple[list[str], list[Box]]:
    """Image keys and boxes from YOLO ``.txt`` files (``class cx cy w h`` normalised), found
    recursively under ``labels_dir``. ``names`` maps class ids to names (default ``animal``)."""
    root = Path(labels_dir)
    if not root.is_dir():
        raise NotFound(f"YOLO labels folder not found: {root}")
    keys, boxes = [], []
    for txt in sorted(root.rglob("*.txt")):
        keys.append(txt.stem)
        for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise UsageError(f"{txt} line {n}: expected 'class cx cy w h', got {line!r}")
            c, cx, cy, w, h = int(float(parts[0])), *map(float, parts[1:])
            label = names[c] if names and 0 <= c < len(names) else "animal"
            boxes.append(Box(txt.stem, label, (cx - w / 2, cy - h / 2, w, h)))
    if not keys:
        raise UsageError(f"{root}: no YOLO .txt label files found")
    return keys, boxes


def read_ground_truth(path: str | Path, names: Sequence[str] | None = None) -> tuple[list[str], list[Box]]:
    """COCO json (a ``.json`` file) or a folder of YOLO txt files."""
    p = Path(path)
    if p.is_dir():
        return read_yolo(p, names)
    if p.suffix.lower() == ".json":
        return read_coco(p)
    raise UsageError(f"ground truth {p} must be a COCO .json file or a folder of YOLO .txt files")


def read_predictions(md_json: str | Path | dict) -> list[Box]:
    """Boxes from a MegaDetector batch JSON (validated with MegaDetector's rules)."""
    from wildspace.formats.megadetector import read_results

    doc = read_results(md_json)
    cats = doc.get("detection_categories", {})
    return [Box(_stem(im["file"]), cats.get(str(d["category"]), str(d["category"])), tuple(d["bbox"]), float(d["conf"]))
            for im in doc["images"] for d in (im.get("detections") or [])]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _class_key(label: str, mode: str, ground_truth: bool) -> str | None:
    if mode == "any":
        return "object"
    if mode == "same":
        return label
    kind = label_kind(label)
    if ground_truth:  # species names are animals unless they name people or vehicles
        return None if kind in ("human", "vehicle") else "animal"
    return "animal" if kind == "animal" else None


def _match(preds: list[Box], gts: list[Box], mode: str, min_iou: float) -> tuple[list[tuple[float, bool]], int]:
    """``[(conf, is_tp)]`` for every prediction (best first per image) and the number of
    ground-truth boxes in play."""
    by_image: dict[str, dict[str, list[Box]]] = {}
    n_gt = 0
    for g in gts:
        k = _class_key(g.label, mode, True)
        if k is not None:
            by_image.setdefault(g.image, {}).setdefault(k, []).append(g)
            n_gt += 1
    scored = []
    pred_by_image: dict[str, list[Box]] = {}
    for p in preds:
        pred_by_image.setdefault(p.image, []).append(p)
    for image, ps in pred_by_image.items():
        used: set[int] = set()
        for p in sorted(ps, key=lambda b: -b.conf):
            k = _class_key(p.label, mode, False)
            if k is None:
                continue
            cands = by_image.get(image, {}).get(k, [])
            best, best_iou = None, min_iou
            for j, g in enumerate(cands):
                v = iou(p.bbox, g.bbox)
                if id(g) not in used and v >= best_iou:
                    best, best_iou = j, v
            if best is not None:
                used.add(id(cands[best]))
            scored.append((p.conf, best is not None))
    return scored, n_gt


def detection_metrics(predictions: list[Box], ground_truth: list[Box], gt_images: Sequence[str],
                      threshold: float = 0.2, min_iou: float = 0.5, classes: str = "animal") -> dict:
    """Precision, recall, F1 at ``threshold``, AP over all confidences, and image-level recall.

    Only predictions on images that have ground truth count (a ground-truth file lists its
    images, boxes or not).

    Raises:
        ValueError: an unknown class mode or no prediction for any ground-truth image.
    """
    if classes not in CLASS_MODES:
        raise UsageError(f"classes '{classes}' is not one of {', '.join(CLASS_MODES)}")
    keys = set(gt_images)
    preds = [p for p in predictions if p.image in keys]
    seen = {p.image for p in predictions}
    if not keys & seen and predictions:
        raise UsageError("no prediction file name matches a ground-truth image (files are matched by "
                         f"name without folder/extension, e.g. {sorted(keys)[:2]} vs {sorted(seen)[:2]})")
    # a single greedy matching at the threshold (the headline numbers) ...
    at, n_gt = _match([p for p in preds if p.conf >= threshold], ground_truth, classes, min_iou)
    tp = sum(1 for _, hit in at if hit)
    fp = len(at) - tp
    fn = n_gt - tp
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / n_gt if n_gt else None
    # ... and over all confidences for AP and the curve
    allm, _ = _match(preds, ground_truth, classes, min_iou)
    curve = _pr_curve(allm, n_gt)
    gt_pos = {g.image for g in ground_truth if _class_key(g.label, classes, True) is not None}
    found = {p.image for p in preds if p.conf >= threshold and _class_key(p.label, classes, False) is not None}
    return {
        "images": len(keys), "images_with_predictions": len(keys & seen), "ground_truth_boxes": n_gt,
        "threshold": threshold, "iou": min_iou, "classes": classes,
        "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
        "f1": (2 * precision * recall / (precision + recall)) if precision and recall else 0.0,
        "ap": curve["ap"],
        "image_level": {"images_with_boxes": len(gt_pos), "found": len(gt_pos & found),
                        "recall": len(gt_pos & found) / len(gt_pos) if gt_pos else None,
                        "false_alarm_images": len(found - gt_pos)},
        "curve": {k: curve[k] for k in ("precision", "recall", "conf")},
    }


def _pr_curve(scored: list[tuple[float, bool]], n_gt: int) -> dict:
    if not scored or not n_gt:
        return {"ap": 0.0 if n_gt else None, "precision": [], "recall": [], "conf": []}
    order = sorted(scored, key=lambda s: -s[0])
    hits = np.array([h for _, h in order], float)
    tp = np.cumsum(hits)
    prec = tp / np.arange(1, len(hits) + 1)
    rec = tp / n_gt
    env = np.maximum.accumulate(prec[::-1])[::-1]  # precision envelope
    r = np.concatenate([[0.0], rec])
    ap = float(np.sum((r[1:] - r[:-1]) * env))
    return {"ap": ap, "precision": prec.round(4).tolist(), "recall": rec.round(4).tolist(),
            "conf": [round(c, 4) for c, _ in order]}
