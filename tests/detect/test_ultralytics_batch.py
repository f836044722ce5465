"""Ultralytics models run batched through our path give what ultralytics' predictor gives
one file at a time (the reference path Pytorch-Wildlife uses)."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.detect.base import detect_images, xyxy_to_detections
from wildspace.detect.factory import build_detector
from wildspace.detect.parity import detections_within_tolerance, identical_detections


def _images():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 255, shape, dtype=np.uint8)
            for shape in [(240, 320, 3), (240, 320, 3), (300, 200, 3), (97, 411, 3)]]


def _predictor(det, image, conf):
    (r,) = det.model.predict(np.ascontiguousarray(image[..., ::-1]), imgsz=det.info.input_size,
                             conf=conf, device="cpu", verbose=False)
    b = r.boxes
    return xyxy_to_detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy(), image.shape[:2], conf)


@pytest.mark.parametrize("key", ["yolov9", "yolov10"])
def test_same_detections_as_the_per_file_predictor(model_files, key):
    det = build_detector(model_files[key], input_size=256)
    images = _images()
    # minimum rectangles, as the predictor letterboxes a single image
    assert det.prepare(images[2]).key == (256, 192) and det.prepare(images[3]).key == (64, 256)
    one_by_one = [det.run([det.prepare(im)], 0.001)[0] for im in images]
    reference = [_predictor(det, im, 0.001) for im in images]
    assert sum(len(r) for r in reference) > 0
    for ours, ref in zip(one_by_one, reference):
        assert identical_detections(ours, ref)
    batched = detect_images(det, images, 0.001)  # the two 240x320 images share a pass
    for ours, ref in zip(batched, reference):
        assert detections_within_tolerance(ours, ref, threshold=0.001)
