"""Later loads of an exported ultralytics detector run from the ONNX file alone (no PyTorch):
same detections as the full detector with ``backend="onnx"``, chosen only when it applies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from wildspace.detect.base import detect_images  # noqa: E402
from wildspace.detect.exported import ExportedYoloDetector  # noqa: E402
from wildspace.detect.factory import build_detector  # noqa: E402
from wildspace.detect.ultralytics_detector import UltralyticsDetector  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _images():
    rng = np.random.default_rng(11)
    return [rng.integers(0, 255, shape, dtype=np.uint8)
            for shape in [(240, 320, 3), (240, 320, 3), (300, 200, 3), (97, 411, 3), (256, 256, 3)]]


@pytest.mark.parametrize("key", ["yolov9", "yolov10", "mdv5_p6"])
def test_second_load_runs_the_export_without_the_checkpoint(model_files, tmp_path, key):
    from wildspace.detect.yolov5_detector import YOLOv5Detector

    first = build_detector(model_files[key], input_size=256, backend="onnx", export_dir=tmp_path)
    assert isinstance(first, (UltralyticsDetector, YOLOv5Detector)) and first.backend == "onnx"
    (meta_file,) = tmp_path.glob("*.json")
    runtime = json.loads(meta_file.read_text())["runtime"]
    assert runtime["labels"] == list(first.labels) and runtime["stride"] == first.stride
    again = build_detector(model_files[key], input_size=256, backend="onnx", export_dir=tmp_path)
    assert isinstance(again, ExportedYoloDetector)
    assert (again.info.labels, again.info.input_size, again.stride) == (first.info.labels, 256, first.stride)
    images = _images()
    want, got = detect_images(first, images, 0.001), detect_images(again, images, 0.001)
    assert sum(map(len, want)) > 0
    assert got == want  # bit-identical: same network file, same letterbox/NMS arithmetic
    # the size is the caller's: a different inference size gives the full detector's answer at that size
    big = build_detector(model_files[key], input_size=320, backend="onnx", export_dir=tmp_path)
    ref = build_detector(model_files[key], input_size=320, backend="torch")
    assert isinstance(big, ExportedYoloDetector) and not isinstance(ref, ExportedYoloDetector)
    assert [p.data.shape for p in map(big.prepare, images)] == [p.data.shape for p in map(ref.prepare, images)]


def test_torch_auto_and_other_weights_take_the_full_path(model_files, tmp_path):
    weights = model_files["yolov9"]
    build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path)
    assert isinstance(build_detector(weights, input_size=256, backend="torch", export_dir=tmp_path),
                      UltralyticsDetector)
    (meta_file,) = tmp_path.glob("*.json")
    meta = json.loads(meta_file.read_text())
    meta["speed"].update(speedup=0.5, noisy=False)  # the export measured slower here: auto keeps eager torch
    meta_file.write_text(json.dumps(meta))
    auto = build_detector(weights, input_size=256, backend="auto", export_dir=tmp_path)
    assert isinstance(auto, UltralyticsDetector) and auto.backend == "torch"
    meta["speed"]["speedup"] = 2.0
    meta_file.write_text(json.dumps(meta))
    assert isinstance(build_detector(weights, input_size=256, backend="auto", export_dir=tmp_path),
                      ExportedYoloDetector)
    other = tmp_path / "other.pt"  # one changed byte is another file: its own export
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    assert isinstance(build_detector(other, input_size=256, backend="onnx", export_dir=tmp_path),
                      UltralyticsDetector)
    del meta["runtime"]  # an export from before runtime records: the full path adds one
    meta_file.write_text(json.dumps(meta))
    assert isinstance(build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path),
                      UltralyticsDetector)
    assert "runtime" in json.loads(meta_file.read_text())


def test_a_damaged_cached_export_is_exported_again(model_files, tmp_path):
    weights = model_files["yolov9"]
    first = build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path)
    (onnx_file,) = tmp_path.glob("*.onnx")
    onnx_file.write_bytes(b"not an onnx file")  # disk damage, a foreign file under that name
    again = build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path)
    assert isinstance(again, UltralyticsDetector) and again.backend == "onnx"  # re-exported
    assert onnx_file.stat().st_size > 1000
    images = _images()
    assert detect_images(again, images, 0.01) == detect_images(first, images, 0.01)
    assert isinstance(build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path),
                      ExportedYoloDetector)


def test_cli_with_a_cached_export_never_imports_torch(model_files, tmp_path):
    home = tmp_path / "home"
    weights = tmp_path / "md.pt"
    shutil.copy(model_files["yolov9"], weights)
    build_detector(weights, input_size=256, backend="onnx", export_dir=home / "exported")
    from PIL import Image

    for i, im in enumerate(_images()):
        Image.fromarray(im).save(tmp_path / f"im{i}.jpg")
    code = ("import sys; from wildspace.cli import main; "
            "rc = main(sys.argv[1:]); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    env = {**os.environ, "WILDSPACE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, "detect", "--weights", str(weights), "--backend", "onnx",
                        "--image-size", "256", "--threshold", "0.001", "-o", str(tmp_path / "out.json"),
                        *[str(p) for p in sorted(tmp_path.glob("im*.jpg"))]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH"
    doc = json.loads((tmp_path / "out.json").read_text())
    assert len(doc["images"]) == 5 and all("failure" not in im for im in doc["images"])
