"""Non-maximum suppression in NumPy, so an exported network can run without PyTorch.

:func:`yolo_nms` gives, on the output of an ultralytics YOLO detection head, exactly what
ultralytics' ``non_max_suppression`` gives with the predictor's settings (one best class per
box, class-aware, torchvision's greedy NMS): the same float32 arithmetic in the same order,
ties broken the same way (stable descending sort). ``tests/detect/test_nms.py`` compares the
two on random and adversarial inputs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_WH = 7680  # class offset for class-aware NMS, larger than any input side
MAX_NMS = 30000  # boxes considered per image, highest confidence first


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int | None = None) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, by descending score (torchvision's rule:
    a box is dropped when its IoU with a kept, higher-scoring box is > ``iou_threshold``).

    ``boxes`` are float32 ``(N, 4)`` xyxy; stops after ``limit`` kept boxes.
    """
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    n = len(order)
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n):
            if suppressed[i]:
                continue
            keep.append(i)
            if limit is not None and len(keep) >= limit:
                break
            w = np.maximum(np.float32(0), np.minimum(x2[i], x2[i + 1:]) - np.maximum(x1[i], x1[i + 1:]))
            h = np.maximum(np.float32(0), np.minimum(y2[i], y2[i + 1:]) - np.maximum(y1[i], y1[i + 1:]))
            inter = w * h
            iou = inter / (areas[i] + areas[i + 1:] - inter)
            suppressed[i + 1:] |= iou.astype(np.float64) > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def yolo_nms(pred: np.ndarray, conf_threshold: float, iou_threshold: float = 0.7, max_det: int = 300,
             agnostic: bool = False, end2end: bool = False) -> list[np.ndarray]:
    """Per image, an ``(n, 6)`` float32 array ``[x1, y1, x2, y2, conf, class]`` in input px.

    Args:
        pred: ``(B, 4 + nc, N)`` raw head output (xywh, class scores), or for end-to-end
            models (YOLOv10 and later) ``(B, K, 6)`` rows that need no NMS.
    """
    pred = np.asarray(pred, dtype=np.float32)
    if end2end or pred.shape[-1] == 6:
        return [p[p[:, 4] > conf_threshold][:max_det] for p in pred]
    out = []
    for x in pred.transpose(0, 2, 1):
        scores = x[:, 4:]
        x = x[scores.max(1) > conf_threshold]
        if not len(x):
            out.append(np.zeros((0, 6), np.float32))
            continue
        half = x[:, 2:4] / np.float32(2)
        box = np.concatenate([x[:, :2] - half, x[:, :2] + half], 1)
        cls = x[:, 4:].argmax(1)
        conf = x[np.arange(len(x)), 4 + cls]
        rows = np.concatenate([box, conf[:, None], cls[:, None].astype(np.float32)], 1)[conf > conf_threshold]
        if len(rows) > MAX_NMS:
            rows = rows[np.argsort(-rows[:, 4], kind="stable")[:MAX_NMS]]
        offset = rows[:, 5:6] * np.float32(0 if agnostic else MAX_WH)
        kept = greedy_nms(rows[:, :4] + offset, rows[:, 4], iou_threshold, limit=max_det)
        out.append(rows[kept])
    return out


def yolov5_nms(pred: np.ndarray | Sequence[np.ndarray], conf_threshold: float, iou_threshold: float = 0.45,
               max_det: int = 300) -> list[np.ndarray]:
    """NumPy twin of :func:`wildspace.detect.yolov5_detector.yolov5_nms` (legacy YOLOv5 /
    MegaDetector v5 output ``(B, N, 5 + nc)``, or one ``(N, 5 + nc)`` array per image:
    objectness x class probability)."""
    out = []
    for x in pred:
        x = np.asarray(x, dtype=np.float32)
        x = x[x[:, 4] > conf_threshold]
        if not len(x):
            out.append(np.zeros((0, 6), np.float32))
            continue
        scores = x[:, 5:] * x[:, 4:5]
        cls = scores.argmax(1)
        conf = scores[np.arange(len(x)), cls]
        keep = conf > conf_threshold
        x, conf, cls = x[keep], conf[keep], cls[keep]
        half_w, half_h = x[:, 2] / np.float32(2), x[:, 3] / np.float32(2)
        boxes = np.stack([x[:, 0] - half_w, x[:, 1] - half_h, x[:, 0] + half_w, x[:, 1] + half_h], 1)
        order = np.argsort(-conf, kind="stable")[:MAX_NMS]
        boxes, conf, cls = boxes[order], conf[order], cls[order].astype(np.float32)
        kept = greedy_nms(boxes + cls[:, None] * np.float32(MAX_WH), conf, iou_threshold, limit=max_det)
        out.append(np.concatenate([boxes[kept], conf[kept, None], cls[kept, None]], 1))
    return out
