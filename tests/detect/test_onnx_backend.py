"""The ONNX Runtime backend: exported from the loaded network, cached, checked against torch,
and giving the torch path's detections within the parity tolerance."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from wildspace.detect import onnx_backend  # noqa: E402
from wildspace.detect.base import detect_images  # noqa: E402
from wildspace.detect.factory import build_detector  # noqa: E402
from wildspace.detect.onnx_backend import BackendUnavailable, resolve_backend  # noqa: E402
from wildspace.detect.parity import detections_within_tolerance, identical_detections  # noqa: E402
from wildspace.media.images import load_image  # noqa: E402


def _images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8),
            rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)]


def test_backend_choice_and_errors():
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("auto", "cpu") == "onnx"
    assert resolve_backend("auto", "cuda:0") == "torch"
    with pytest.raises(BackendUnavailable, match="CPU only"):
        resolve_backend("onnx", "cuda")
    with pytest.raises(ValueError, match="choose from torch, onnx, auto"):
        resolve_backend("tensorrt", "cpu")


@pytest.mark.parametrize("key", ["mdv5_p6", "yolov9", "yolov10"])
def test_exported_network_matches_torch(model_files, tmp_path, key):
    ref = build_detector(model_files[key], input_size=256)
    onnx = build_detector(model_files[key], input_size=256, backend="onnx", export_dir=tmp_path)
    assert (ref.backend, onnx.backend) == ("torch", "onnx")
    batch = np.stack([ref.prepare(im).data for im in [_images()[0]] * 2])
    want, got = ref.forward(batch), onnx.forward(batch)
    want = (want[0] if isinstance(want, (list, tuple)) else want).numpy()
    got = (got[0] if isinstance(got, (list, tuple)) else got).numpy()
    assert got.shape == want.shape
    assert onnx_backend.parity_error(got, want) <= 1.0
    (report,) = tmp_path.glob("*.json")
    assert json.loads(report.read_text())["parity"]["ok"] is True
    for a, b in zip(detect_images(ref, _images(), 0.01), detect_images(onnx, _images(), 0.01)):
        assert detections_within_tolerance(a, b, threshold=0.01)


def test_export_is_cached_by_weights(model_files, tmp_path):
    build_detector(model_files["mdv5_p6"], input_size=256, backend="onnx", export_dir=tmp_path)
    (exported,) = tmp_path.glob("*.onnx")
    stamp = exported.stat().st_mtime_ns
    again = build_detector(model_files["mdv5_p6"], input_size=128, backend="onnx", export_dir=tmp_path)
    assert again.backend == "onnx"
    assert list(tmp_path.glob("*.onnx")) == [exported] and exported.stat().st_mtime_ns == stamp


def test_export_that_disagrees_is_refused_and_auto_falls_back(model_files, tmp_path, monkeypatch):
    real_call = onnx_backend.OnnxNetwork.__call__
    monkeypatch.setattr(onnx_backend.OnnxNetwork, "__call__", lambda self, x: real_call(self, x) * 1.05)
    with pytest.raises(BackendUnavailable, match="parity tolerance"):
        build_detector(model_files["mdv5_p6"], input_size=256, backend="onnx", export_dir=tmp_path)
    assert not list(tmp_path.glob("*.onnx"))  # nothing cached
    det = build_detector(model_files["mdv5_p6"], input_size=256, backend="auto", export_dir=tmp_path)
    assert det.backend == "torch"


@pytest.mark.slow
def test_rtdetr_refuses_onnx(rtdetr_file, tmp_path):
    with pytest.raises(BackendUnavailable, match="RT-DETR"):
        build_detector(rtdetr_file, input_size=256, backend="onnx", export_dir=tmp_path)


@pytest.mark.slow
def test_real_yolov5n_onnx_detections_match_torch(shared_data, tmp_path):
    weights = shared_data / "weights" / "yolov5n.pt"
    images = [load_image(p) for p in sorted((shared_data / "camera-trap" / "megadetector-test").glob("*.jpg"))[:6]]
    ref = build_detector(weights, input_size=640)
    onnx = build_detector(weights, input_size=640, backend="onnx", export_dir=tmp_path)
    pairs = list(zip(detect_images(ref, images, 0.1), detect_images(onnx, images, 0.1)))
    assert sum(len(a) for a, _ in pairs) > 0
    for a, b in pairs:
        assert detections_within_tolerance(a, b, threshold=0.1)
    assert sum(identical_detections(a, b) for a, b in pairs) >= len(pairs) - 1
    # a second load runs the cached export without torch: exactly the onnx detector's answers
    from wildspace.detect.exported import ExportedYoloDetector

    again = build_detector(weights, input_size=640, backend="onnx", export_dir=tmp_path)
    assert isinstance(again, ExportedYoloDetector)
    assert detect_images(again, images, 0.005) == detect_images(onnx, images, 0.005)


def test_auto_keeps_torch_when_the_export_is_not_faster(model_files, tmp_path, monkeypatch):
    real = onnx_backend.measure_speed
    monkeypatch.setattr(onnx_backend, "measure_speed",
                        lambda *a, **k: {**real(*a, **k), "speedup": 0.5, "noisy": False})
    assert build_detector(model_files["mdv5_p6"], input_size=256, backend="auto",
                          export_dir=tmp_path).backend == "torch"
    (report,) = tmp_path.glob("*.json")
    assert json.loads(report.read_text())["speed"]["speedup"] == 0.5
    assert build_detector(model_files["mdv5_p6"], input_size=256, backend="onnx",
                          export_dir=tmp_path).backend == "onnx"


def test_network_input_has_the_torch_paths_bits():
    import torch

    from wildspace.detect.onnx_backend import nchw_float

    arr = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    arr[0, 0, 0] = (0, 255, 128)
    x = nchw_float(arr)
    assert x.dtype == np.float32 and x.shape == (2, 3, 48, 64) and x.flags.c_contiguous
    expected = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255  # yolov5_detector's formula
    assert np.array_equal(x, expected.numpy())
    assert np.array_equal(x, arr.transpose(0, 3, 1, 2).astype(np.float32) / 255)
