"""Which precision runs, and why: ``auto`` takes a reduced precision only where that path
(precision + runtime) passed parity on real weights and the CPU is built for it; bf16 runs
the verified export through OpenVINO with backends onnx/auto, eager autocast with the head in
fp32 with backend torch; ``--precision`` and ``--explain`` on the command line. (Parity itself
is measured on real weights in test_precision_parity.py, never on these random-weight networks.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wildspace.detect import cpu
from wildspace.detect import precision as prec
from wildspace.detect.cpu import has_fast_bf16
from wildspace.detect.exported import ExportedYoloDetector, default_streams
from wildspace.detect.factory import build_detector
from wildspace.detect.onnx_backend import BackendUnavailable
from wildspace.detect.precision import ParityResult, resolve_precision

ROOT = Path(__file__).resolve().parents[2]
PASSING = ParityResult("real.pt", {640: (50, 50), 1280: (99, 100)}, {640: (50, 50), 1280: (100, 100)})


def test_auto_takes_the_openvino_bf16_path_only_on_a_cpu_built_for_it(monkeypatch):
    monkeypatch.setattr(prec, "cpu_supports", lambda p: True)
    chosen, why = resolve_precision("auto", "yolov5-legacy")
    assert chosen == "bf16" and "bf16 (OpenVINO): parity 7/7 at 640, 8/8 at 1280" in why and "passes" in why
    chosen, why = resolve_precision("auto", "ultralytics")  # judged by the yolov5n measurement, and says so
    assert chosen == "bf16" and "of the yolov5-legacy family (none of this family here)" in why
    chosen, why = resolve_precision("auto", "yolov5-legacy", backend="torch")  # eager bf16 fails parity
    assert chosen == "fp32" and "eager PyTorch" in why and "7/8 at 1280" in why and "fails" in why
    assert resolve_precision("auto", "ultralytics", backend="torch")[0] == "fp32"  # no measurement
    assert resolve_precision("auto", "yolov5-legacy", "cuda:0")[0] == "fp32"
    monkeypatch.setattr(prec, "cpu_supports", lambda p: p == "fp32")
    chosen, why = resolve_precision("auto", "yolov5-legacy")
    assert chosen == "fp32" and "lacks AMX/AVX-512 BF16" in why
    monkeypatch.setattr(prec, "cpu_supports", lambda p: True)
    monkeypatch.setattr(cpu, "openvino_available", lambda: False)  # then bf16 would be eager
    assert resolve_precision("auto", "yolov5-legacy")[0] == "fp32"
    with pytest.raises(ValueError, match="choose from fp32, bf16, auto"):
        resolve_precision("fp8", "yolov5-legacy")


def test_a_failing_record_keeps_fp32(monkeypatch):
    monkeypatch.setattr(prec, "cpu_supports", lambda p: True)
    failing = ParityResult("real.pt", {640: (50, 50), 1280: (97, 100)}, {})
    assert PASSING.passes and not failing.passes
    monkeypatch.setitem(prec.MEASURED_PARITY, ("yolov5-legacy", "bf16", "openvino"), failing)
    chosen, why = resolve_precision("auto", "yolov5-legacy")
    assert chosen == "fp32" and "97/100 at 1280" in why
    monkeypatch.setitem(prec.MEASURED_PARITY, ("yolov5-legacy", "bf16", "torch"), PASSING)
    assert resolve_precision("auto", "yolov5-legacy", backend="torch")[0] == "bf16"


@pytest.mark.parametrize("key", ["mdv5_p6", "yolov9"])
def test_bf16_with_backend_torch_runs_eager_with_the_head_in_fp32(model_files, tmp_path, key):
    det = build_detector(model_files[key], input_size=256, precision="bf16", backend="torch", export_dir=tmp_path)
    assert (det.backend, det.precision) == ("torch", "bf16")
    assert not list(tmp_path.glob("*.onnx"))  # eager bf16 never exports
    ref = build_detector(model_files[key], input_size=256, precision="fp32")
    batch = np.stack([ref.prepare(np.full((240, 320, 3), 90, np.uint8)).data] * 2)
    got, want = det.forward(batch), ref.forward(batch)
    got = got[0] if isinstance(got, (list, tuple)) else got
    want = want[0] if isinstance(want, (list, tuple)) else want
    assert got.dtype == torch.float32 and got.shape == want.shape
    # box centres come from the fp32 head: not rounded to bf16's 8-bit mantissa grid
    xy = got[0, :, :2] if key == "mdv5_p6" else got[0, :2, :].T
    assert not torch.equal(xy, xy.bfloat16().float())


@pytest.mark.parametrize("key", ["mdv5_p6", "yolov9"])
def test_bf16_with_backend_auto_runs_the_export_through_openvino(model_files, tmp_path, key):
    det = build_detector(model_files[key], input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    assert (det.backend, det.precision) == ("onnx", "bf16")
    assert det._onnx.runtime == "openvino" and len(list(tmp_path.glob("*.onnx"))) == 1  # exported, verified
    fp32 = build_detector(model_files[key], input_size=256, precision="fp32", backend="onnx", export_dir=tmp_path)
    assert isinstance(fp32, ExportedYoloDetector) and fp32.network.runtime == "onnxruntime"
    again = build_detector(model_files[key], input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    assert isinstance(again, ExportedYoloDetector) and again.network.runtime == "openvino"
    assert again.precision == "bf16"
    # OpenVINO: single images over two one-thread streams on 2+ cores (as many as ONNX
    # Runtime's sessions); ONNX Runtime leaves the batch to the pipeline
    assert again.cpu_batch_size == 1 and fp32.cpu_batch_size is None
    assert again.network.streams == fp32.network.streams == default_streams(None)
    assert again.parallel_batches == again.network.streams
    batch = np.stack([again.prepare(np.full((240, 320, 3), 90, np.uint8)).data] * 2)
    out, ref = np.asarray(again.forward(batch)), np.asarray(fp32.forward(batch))
    assert out.dtype == np.float32 and out.shape == ref.shape and np.isfinite(out).all()
    assert not np.array_equal(out, ref)  # really another arithmetic (same graph, bf16 kernels)
    dets = again.run([again.prepare(np.full((240, 320, 3), 90, np.uint8))], 0.001)
    assert len(dets) == 1


def test_bf16_with_backend_onnx_needs_openvino(model_files, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "openvino_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="pip install openvino"):
        build_detector(model_files["mdv5_p6"], input_size=256, precision="bf16", backend="onnx", export_dir=tmp_path)
    det = build_detector(model_files["mdv5_p6"], input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    assert (det.backend, det.precision) == ("torch", "bf16")  # auto without openvino: eager bf16


def test_cli_precision_and_explain(model_files, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((240, 320, 3), 120, np.uint8)).save(tmp_path / "a.jpg")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WILDSPACE_HOME": str(tmp_path / "home")}
    env.pop("WILDSPACE_BACKEND")
    env.pop("WILDSPACE_PRECISION")

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "wildspace", "detect", "--weights", str(model_files["mdv5_p6"]),
                               "--image-size", "256", "-o", str(tmp_path / "out.json"), "--explain", *extra,
                               str(tmp_path / "a.jpg")], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)

    r = run()  # the defaults: auto / auto
    assert r.returncode == 0, r.stderr
    if has_fast_bf16():  # this machine's CPU decides
        assert "runs: OpenVINO (onnx), bf16" in r.stderr and "precision bf16 (asked auto)" in r.stderr
        assert "backend onnx: bf16 runs the verified ONNX export through OpenVINO" in r.stderr
    else:
        assert "precision fp32 (asked auto)" in r.stderr and "lacks AMX/AVX-512 BF16" in r.stderr
        assert "backend onnx: auto keeps the verified ONNX Runtime export" in r.stderr
    assert "threads on cpu" in r.stderr
    assert json.loads((tmp_path / "out.json").read_text())["images"][0]["file"] == "a.jpg"
    r = run("--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert "runs: ONNX Runtime (onnx), fp32" in r.stderr and "precision fp32 (asked fp32)" in r.stderr
    r = run("--precision", "bf16", "--backend", "torch")
    assert r.returncode == 0, r.stderr
    assert "runs: PyTorch (torch), bf16" in r.stderr and "backend torch: asked for" in r.stderr
