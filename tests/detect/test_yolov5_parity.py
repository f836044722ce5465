"""The real YOLOv5n checkpoint reproduces the reference implementation's golden detections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wildspace.detect.base import detect_images
from wildspace.detect.yolov5_detector import YOLOv5Detector
from wildspace.media.images import load_image
from wildspace.types import DetectorInfo


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.fixture(scope="module")
def golden(shared_data):
    return json.loads((shared_data / "weights" / "yolov5n_reference_detections.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("size", [640, 1280])
def test_yolov5n_matches_reference(shared_data, golden, size):
    info = DetectorInfo(name="yolov5n", labels=(), input_size=size)
    det = YOLOv5Detector(shared_data / "weights" / "yolov5n.pt", info)
    folder = shared_data / "camera-trap" / "megadetector-test"
    refs = golden["results_by_size"][str(size)]
    images = [load_image(folder / r["file"]) for r in refs]
    results = detect_images(det, images, conf_threshold=0.10)
    matched = total = extras = 0
    for ref, img, dets in zip(refs, images, results):
        h, w = img.shape[:2]
        assert (w, h) == (ref["width"], ref["height"])
        ours = [(d.class_id, d.conf, (d.bbox_xywh_norm[0] * w, d.bbox_xywh_norm[1] * h,
                                      (d.bbox_xywh_norm[0] + d.bbox_xywh_norm[2]) * w,
                                      (d.bbox_xywh_norm[1] + d.bbox_xywh_norm[3]) * h)) for d in dets]
        used = set()
        for r in ref["detections"]:
            hit = None
            for j, (c, conf, box) in enumerate(ours):
                if j in used or c != r["class_id"]:
                    continue
                if _iou(box, r["bbox_xyxy"]) >= 0.9 and abs(conf - r["conf"]) <= 0.02:
                    hit = j
                    break
            if hit is not None:
                used.add(hit)
            if r["conf"] >= 0.25:
                total += 1
                matched += hit is not None
        extras += sum(1 for j, (c, conf, _) in enumerate(ours) if j not in used and conf >= 0.3)
    assert total > 0
    assert matched / total >= 0.98, f"{matched}/{total} reference boxes matched at {size}"
    assert extras == 0, f"{extras} extra boxes with conf >= 0.3 at {size}"
    # the letterbox geometry is the reference's, image by image
    for ref, img in zip(refs, images):
        p = det.prepare(img)
        assert list(p.meta.input_hw) == ref["letterbox"]["input_shape_hw"]
        assert np.allclose(p.meta.pad_xy, ref["letterbox"]["unscale_pad_xy"])
