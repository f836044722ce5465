"""Which precision runs, and why: ``auto`` takes a reduced precision only where it passed
parity on real weights of the family and the CPU is built for it; bf16 keeps the head fp32;
``--precision`` and ``--explain`` on the command line. (Parity itself is measured on real
weights in test_precision_parity.py, never on these random-weight networks.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wildspace.detect import precision as prec
from wildspace.detect.factory import build_detector
from wildspace.detect.onnx_backend import BackendUnavailable
from wildspace.detect.precision import ParityResult, resolve_precision

ROOT = Path(__file__).resolve().parents[2]
PASSING = ParityResult("real.pt", {640: (50, 50), 1280: (99, 100)}, {640: (50, 50), 1280: (100, 100)})


def test_auto_is_fp32_where_no_reduced_path_passed_parity():
    chosen, why = resolve_precision("auto", "yolov5-legacy")
    assert chosen == "fp32" and "7/8 at 1280" in why and "fails" in why
    chosen, why = resolve_precision("auto", "ultralytics")  # a user's model: no measurement for the family
    assert chosen == "fp32" and "no parity measurement for the ultralytics family" in why
    assert resolve_precision("bf16", "ultralytics")[0] == "bf16"  # asked for: honoured
    assert resolve_precision("auto", "yolov5-legacy", "cuda:0")[0] == "fp32"
    with pytest.raises(ValueError, match="choose from fp32, bf16, auto"):
        resolve_precision("fp8", "yolov5-legacy")


def test_auto_takes_a_passing_path_only_on_a_cpu_built_for_it(monkeypatch):
    monkeypatch.setitem(prec.MEASURED_PARITY, ("yolov5-legacy", "bf16"), PASSING)
    assert PASSING.passes
    monkeypatch.setattr(prec, "cpu_supports", lambda p: True)
    assert resolve_precision("auto", "yolov5-legacy")[0] == "bf16"
    assert resolve_precision("auto", "ultralytics")[0] == "fp32"  # another family's parity does not count
    monkeypatch.setattr(prec, "cpu_supports", lambda p: p == "fp32")
    chosen, why = resolve_precision("auto", "yolov5-legacy")
    assert chosen == "fp32" and "lacks the instructions" in why
    failing = ParityResult("real.pt", {640: (50, 50), 1280: (97, 100)}, {})
    assert not failing.passes


@pytest.mark.parametrize("key", ["mdv5_p6", "yolov9"])
def test_bf16_runs_eager_with_the_head_in_fp32(model_files, tmp_path, key):
    det = build_detector(model_files[key], input_size=256, precision="bf16", backend="auto", export_dir=tmp_path)
    assert (det.backend, det.precision) == ("torch", "bf16")
    assert not list(tmp_path.glob("*.onnx"))  # bf16 never exports
    ref = build_detector(model_files[key], input_size=256, precision="fp32")
    batch = np.stack([ref.prepare(np.full((240, 320, 3), 90, np.uint8)).data] * 2)
    got, want = det.forward(batch), ref.forward(batch)
    got = got[0] if isinstance(got, (list, tuple)) else got
    want = want[0] if isinstance(want, (list, tuple)) else want
    assert got.dtype == torch.float32 and got.shape == want.shape
    # box centres come from the fp32 head: not rounded to bf16's 8-bit mantissa grid
    xy = got[0, :, :2] if key == "mdv5_p6" else got[0, :2, :].T
    assert not torch.equal(xy, xy.bfloat16().float())
    with pytest.raises(BackendUnavailable, match="bf16 runs eager PyTorch"):
        build_detector(model_files[key], input_size=256, precision="bf16", backend="onnx", export_dir=tmp_path)


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
    assert "precision fp32 (asked auto)" in r.stderr and "7/8 at 1280" in r.stderr
    assert "backend onnx: auto keeps the verified ONNX Runtime export" in r.stderr
    assert "threads on cpu" in r.stderr
    assert json.loads((tmp_path / "out.json").read_text())["images"][0]["file"] == "a.jpg"
    r = run("--precision", "bf16", "--backend", "auto")
    assert r.returncode == 0, r.stderr
    assert "runs: PyTorch (torch), bf16" in r.stderr and "backend torch: bf16 runs eager PyTorch" in r.stderr
    r = run("--precision", "fp32", "--backend", "torch")
    assert r.returncode == 0 and "backend torch: asked for" in r.stderr
