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
