"""The legacy YOLOv5 head decoded in NumPy from the head's logits (the OpenVINO path's cut):
the same rows as the head's own decoding, in the same order, and the same detections as the
whole exported graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wildspace.detect.yolov5_head import decode_candidates, head_record
from wildspace.detect.yolov5_modules import Detect

ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


def _head(nc: int = 3):
    torch.manual_seed(0)
    det = Detect(nc=nc, anchors=ANCHORS, ch=(8, 16, 32)).eval()
    det.stride = torch.tensor([8.0, 16.0, 32.0])
    det.anchors /= det.stride.view(-1, 1, 1)  # as the model builder leaves them: stride units
    with torch.no_grad():
        for m in det.m:
            m.bias.normal_(0, 2)  # a spread of objectness, some above any threshold
    record = head_record(det.stride.tolist(), (det.anchors * det.stride.view(-1, 1, 1)).flatten(1).tolist())
    return det, record


def _logits(outs) -> list[np.ndarray]:
    """The head's permuted outputs ``(B, na, ny, nx, no)`` back in the layout the cut graph
    gives, ``(B, na, no, ny, nx)``."""
    return [t.permute(0, 1, 4, 2, 3).contiguous().numpy() for t in outs]


def _features(batch: int, h: int, w: int):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, c, h // s, w // s, generator=g) for c, s in ((8, 8), (16, 16), (32, 32))]


def test_decoding_every_row_is_the_heads_own_output():
    det, record = _head()
    with torch.no_grad():
        pred, logits = det(_features(2, 64, 96))
    rows = decode_candidates(_logits(logits), record, None)
    assert len(rows) == 2
    for got, want in zip(rows, pred.numpy()):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threshold", [0.001, 0.3, 0.9, 0.999])
def test_a_threshold_keeps_exactly_the_passing_rows_in_order(threshold):
    det, record = _head()
    with torch.no_grad():
        pred, logits = det(_features(2, 64, 64))
    rows = decode_candidates(_logits(logits), record, threshold)
    for got, want in zip(rows, pred.numpy()):
        passing = want[want[:, 4] > threshold]
        assert got.shape == passing.shape
        np.testing.assert_allclose(got, passing, rtol=1e-5, atol=1e-5)
    assert sum(len(r) for r in rows) > 0 or threshold > 0.9


def test_a_record_that_does_not_fit_the_outputs_is_refused():
    det, record = _head()
    with torch.no_grad():
        _, logits = det(_features(1, 64, 64))
    maps = _logits(logits)
    with pytest.raises(ValueError):
        decode_candidates(maps[:2], record, 0.5)
    with pytest.raises(ValueError):
        decode_candidates(maps, {**record, "anchors": [a[:4] for a in record["anchors"]]}, 0.5)
    with pytest.raises(ValueError):
        head_record([8.0, 16.0], record["anchors"])


def _images():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(240, 320, 3), (300, 200, 3), (97, 411, 3)]]


def test_openvino_runs_the_cut_graph_with_the_whole_graphs_detections(model_files, tmp_path):
    """MDv5-shaped (P6, four levels): the torch-free bf16 path cuts the head off once (IR and
    report beside the export) and finds the detections the whole graph finds."""
    pytest.importorskip("openvino")
    from wildspace.detect.base import detect_images
    from wildspace.detect.exported import ExportedYoloDetector
    from wildspace.detect.factory import build_detector
    from wildspace.detect.openvino_backend import OpenVinoNetwork

    weights = model_files["mdv5_p6"]
    build_detector(weights, input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    (meta_file,) = [p for p in tmp_path.glob("*.json") if not p.name.endswith("-head.json")]
    head = json.loads(meta_file.read_text())["runtime"]["head"]
    assert len(head["strides"]) == 4 and head["strides"][-1] == 64.0
    det = build_detector(weights, input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    assert isinstance(det, ExportedYoloDetector) and det.network.head == head
    report = json.loads(next(tmp_path.glob("*-head.json")).read_text())
    assert report["ok"] and report["head"] == head and report["precision"] == "bf16"
    assert next(tmp_path.glob("*-head.xml")).is_file() and next(tmp_path.glob("*-head.bin")).is_file()

    images = _images()
    got = detect_images(det, images, 0.001)
    det.network = OpenVinoNetwork(det.network.path, det.threads, det.network.streams)  # the whole graph
    assert det.network.head is None
    want = detect_images(det, images, 0.001)
    assert sum(map(len, want)) > 0 and [len(d) for d in got] == [len(d) for d in want]
    for a, b in zip((x for d in got for x in d), (x for d in want for x in d)):
        assert a.class_id == b.class_id and abs(a.conf - b.conf) < 1e-5
        np.testing.assert_allclose(a.bbox_xywh_norm, b.bbox_xywh_norm, atol=1e-5)


def test_a_graph_without_the_head_runs_whole_and_says_so(model_files, tmp_path, caplog):
    """A head record on a graph that has no such head (here an ultralytics export): no cut,
    a report that says why (so it is not tried on every load), the whole graph runs."""
    pytest.importorskip("openvino")
    from wildspace.detect.factory import build_detector
    from wildspace.detect.openvino_backend import OpenVinoNetwork

    build_detector(model_files["yolov9"], input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    (onnx,) = tmp_path.glob("*.onnx")
    _, record = _head()
    net = OpenVinoNetwork(onnx, 1, 1, head=record)
    assert net.head is None and "head outputs" in caplog.text
    report = json.loads(onnx.with_name(onnx.stem + "-head.json").read_text())
    assert report["ok"] is False and report["head"] == record
    assert net(np.zeros((1, 3, 64, 64), np.float32)).ndim == 3
    with pytest.raises(ValueError):
        net.apply_rows(np.zeros((1, 3, 64, 64), np.float32), 0.5, len)
