"""The NumPy letterbox, NMS and box mapping against ultralytics' own (torch) functions:
the exported-network path must give bit-identical detections without importing PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.detect.letterbox import stride_letterbox, unletterbox_boxes
from wildspace.detect.nms import greedy_nms, yolo_nms, yolov5_nms


def _head_output(rng, batch=2, nc=3, n=4000, size=640) -> np.ndarray:
    """Clustered boxes (so NMS has work), a few exact score ties and exact duplicate boxes."""
    centres = rng.uniform(0, size, (batch, 40, 2))
    pick = rng.integers(0, 40, (batch, n))
    xy = np.take_along_axis(centres, pick[..., None], 1) + rng.normal(0, 6, (batch, n, 2))
    wh = rng.uniform(4, 200, (batch, n, 2)) * rng.choice([1, 0.2], (batch, n, 1))
    scores = rng.uniform(0, 1, (batch, n, nc)) ** 4
    scores[:, ::97] = 0.5  # ties across boxes and classes
    xy[:, 1::101], wh[:, 1::101] = xy[:, ::101][:, : xy[:, 1::101].shape[1]], wh[:, ::101][:, : wh[:, 1::101].shape[1]]
    pred = np.concatenate([xy, wh, scores], -1).astype(np.float32)
    return pred.transpose(0, 2, 1).copy()


@pytest.mark.parametrize("conf", [0.005, 0.25])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_equals_ultralytics(conf, seed):
    import torch
    import torchvision  # noqa: F401  ultralytics uses torchvision's NMS once imported, as the predictor does
    from ultralytics.utils import DEFAULT_CFG, nms

    pred = _head_output(np.random.default_rng(seed))
    want = nms.non_max_suppression(torch.from_numpy(pred), conf, DEFAULT_CFG.iou, None, False,
                                   max_det=DEFAULT_CFG.max_det, nc=0)
    got = yolo_nms(pred, conf, DEFAULT_CFG.iou, DEFAULT_CFG.max_det)
    assert [len(g) for g in got] == [len(w) for w in want] and sum(map(len, got)) > 50
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.numpy())


@pytest.mark.parametrize("conf", [0.005, 0.3])
def test_legacy_yolov5_nms_equals_the_torch_version(conf):
    import torch

    from wildspace.detect.yolov5_detector import yolov5_nms as torch_nms

    rng = np.random.default_rng(7)
    pred = _head_output(rng, nc=3).transpose(0, 2, 1)  # (B, N, 4 + nc) -> insert objectness
    obj = rng.uniform(0, 1, pred.shape[:2] + (1,)).astype(np.float32) ** 2
    obj[:, ::89] = 0.75  # ties
    pred = np.concatenate([pred[..., :4], obj, pred[..., 4:]], -1).copy()
    want = torch_nms(torch.from_numpy(pred), conf, 0.45)
    got = yolov5_nms(pred, conf, 0.45)
    assert sum(map(len, got)) > 20
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.numpy())


def test_end_to_end_output_is_only_filtered():
    import torch
    from ultralytics.utils import nms

    rng = np.random.default_rng(3)
    pred = np.concatenate([rng.uniform(0, 600, (2, 300, 4)), rng.uniform(0, 1, (2, 300, 1)),
                           rng.integers(0, 3, (2, 300, 1))], -1).astype(np.float32)
    want = nms.non_max_suppression(torch.from_numpy(pred), 0.3, 0.7, end2end=True, max_det=100)
    for g, w in zip(yolo_nms(pred, 0.3, 0.7, 100, end2end=True), want):
        np.testing.assert_array_equal(g, w.numpy())


def test_greedy_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.9], np.float32)
    # box 1 overlaps box 0 with IoU 81/119 = 0.68: kept at 0.7, dropped at 0.5; box 3 equals box 0
    assert greedy_nms(boxes, scores, 0.7).tolist() == [0, 1, 2]
    assert greedy_nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert greedy_nms(boxes, scores, 0.5, limit=1).tolist() == [0]
    assert greedy_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


@pytest.mark.parametrize("size,stride", [(640, 32), (1280, 64), (320, 32), (300, 32)])
def test_letterbox_and_box_mapping_equal_ultralytics(size, stride):
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import ops
    from ultralytics.utils.checks import check_imgsz

    rng = np.random.default_rng(size)
    for h, w in [(720, 1280), (3968, 5152), (480, 640), (1000, 333), (1, 900), (640, 640), (37, 59)]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = LetterBox(check_imgsz(size, stride=stride, min_dim=2), auto=True, stride=stride)(image=image)
        got = stride_letterbox(image, size, stride)
        assert got.shape == want.shape and np.array_equal(got, want), (h, w)
        boxes = rng.uniform(-20, max(got.shape) + 20, (50, 4)).astype(np.float32)
        boxes[:, 2:] = boxes[:, :2] + np.abs(boxes[:, 2:] - boxes[:, :2])
        ref = ops.scale_boxes(got.shape[:2], torch.from_numpy(boxes.copy()), (h, w)).numpy()
        np.testing.assert_array_equal(unletterbox_boxes(boxes, got.shape[:2], (h, w)), ref)
