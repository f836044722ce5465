"""Comparing two detectors' outputs on the same image: identical, or within tolerance.

Used by the tests and benchmarks that check an optimised path (batched, exported backend,
reduced-size decoding) against a reference path.

- *identical*: the same detections once written as MegaDetector JSON (class, conf rounded to
  3 decimals, normalised box to 4), in the same order.
- *within tolerance* (:data:`CONF_TOL`, :data:`IOU_MIN`): every detection that is clearly
  above the threshold (``conf >= threshold + conf_tol``) in either list has a partner in the
  other with the same class, ``|conf difference| <= conf_tol`` and ``IoU >= iou_min``.
  Detections within ``conf_tol`` of the threshold may appear on one side only.
"""

from __future__ import annotations

from typing import Sequence

from wildspace.types import Detection

CONF_TOL = 0.01
IOU_MIN = 0.95


def _key(d: Detection) -> tuple:
    return (d.class_id, round(d.conf, 3), tuple(round(v, 4) for v in d.bbox_xywh_norm))


def identical_detections(a: Sequence[Detection], b: Sequence[Detection]) -> bool:
    """Same detections at MegaDetector JSON precision (conf 3 dp, box 4 dp), same order."""
    return [_key(d) for d in a] == [_key(d) for d in b]


def iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes (any common unit)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else float(a == b)


def _covered(src: Sequence[Detection], other: Sequence[Detection], threshold: float,
             conf_tol: float, iou_min: float) -> bool:
    used: set[int] = set()
    for d in src:
        if d.conf < threshold + conf_tol:
            continue
        for j, e in enumerate(other):
            if (j not in used and e.class_id == d.class_id and abs(e.conf - d.conf) <= conf_tol
                    and iou_xywh(d.bbox_xywh_norm, e.bbox_xywh_norm) >= iou_min):
                used.add(j)
                break
        else:
            return False
    return True


def detections_within_tolerance(a: Sequence[Detection], b: Sequence[Detection], threshold: float = 0.0,
                                conf_tol: float = CONF_TOL, iou_min: float = IOU_MIN) -> bool:
    """Whether ``a`` and ``b`` agree within tolerance (see the module docstring)."""
    return (_covered(a, b, threshold, conf_tol, iou_min)
            and _covered(b, a, threshold, conf_tol, iou_min))


def box_agreement(reference: Sequence[Detection], ours: Sequence[Detection], min_conf: float = 0.2,
                  iou_min: float = 0.5) -> tuple[int, int, int]:
    """Coarse agreement at a working threshold, for paths that change pixels (reduced decode).

    Returns ``(matched, reference_boxes, extra_boxes)``: how many reference boxes with
    ``conf >= min_conf`` have a same-class box in ``ours`` (any conf >= ``min_conf / 2``) with
    ``IoU >= iou_min``, how many such reference boxes there are, and how many of our boxes
    with ``conf >= min_conf`` match no reference box the same way.
    """
    def matches(d: Detection, pool: Sequence[Detection], floor: float) -> bool:
        return any(e.class_id == d.class_id and e.conf >= floor
                   and iou_xywh(d.bbox_xywh_norm, e.bbox_xywh_norm) >= iou_min for e in pool)

    ref = [d for d in reference if d.conf >= min_conf]
    matched = sum(matches(d, ours, min_conf / 2) for d in ref)
    extra = sum(not matches(d, reference, min_conf / 2) for d in ours if d.conf >= min_conf)
    return matched, len(ref), extra


def golden_parity(golden_images: Sequence[dict], results: Sequence[Sequence[Detection]],
                  min_conf: float = 0.25, iou_min: float = 0.9, conf_tol: float = 0.02,
                  typical: float = 0.2) -> dict:
    """Compare detections with a golden reference file's per-image entries (the format of
    ``shared/data/weights/yolov5n_reference_detections.json``: ``width``, ``height`` and
    ``detections`` of ``class_id``, ``conf``, pixel ``bbox_xyxy``).

    Returns ``matched`` / ``total``: reference boxes with ``conf >= min_conf`` that have an
    unused same-class partner with ``IoU >= iou_min`` and ``|dconf| <= conf_tol`` (the parity
    rule); ``extra``: our boxes with ``conf >= min_conf + 0.05`` matching no reference box;
    ``max_dconf`` over matched boxes; and ``typical_kept`` / ``typical_total``: reference
    boxes with ``conf >= typical`` that we also report at ``>= typical`` with IoU >= 0.5
    (recall at the working threshold, for paths that fail the rule).
    """
    def xyxy(d: Detection, w: int, h: int) -> tuple:
        x, y, bw, bh = d.bbox_xywh_norm
        return (x * w, y * h, (x + bw) * w, (y + bh) * h)

    def iou_xyxy(a, b) -> float:
        return iou_xywh((a[0], a[1], a[2] - a[0], a[3] - a[1]), (b[0], b[1], b[2] - b[0], b[3] - b[1]))

    out = {"matched": 0, "total": 0, "extra": 0, "max_dconf": 0.0, "typical_kept": 0, "typical_total": 0}
    for ref, dets in zip(golden_images, results):
        w, h = ref["width"], ref["height"]
        ours = [(d.class_id, d.conf, xyxy(d, w, h)) for d in dets]
        used: set[int] = set()
        for r in ref["detections"]:
            hit = next((j for j, (c, conf, box) in enumerate(ours)
                        if j not in used and c == r["class_id"] and abs(conf - r["conf"]) <= conf_tol
                        and iou_xyxy(box, r["bbox_xyxy"]) >= iou_min), None)
            if hit is not None:
                used.add(hit)
                out["max_dconf"] = max(out["max_dconf"], abs(ours[hit][1] - r["conf"]))
            if r["conf"] >= min_conf:
                out["total"] += 1
                out["matched"] += hit is not None
            if r["conf"] >= typical:
                out["typical_total"] += 1
                out["typical_kept"] += any(c == r["class_id"] and conf >= typical
                                           and iou_xyxy(box, r["bbox_xyxy"]) >= 0.5
                                           for c, conf, box in ours)
        out["extra"] += sum(1 for j, (_, conf, _) in enumerate(ours) if j not in used and conf >= min_conf + 0.05)
    return out
