"""The benchmarks' measuring tools: per-process CPU seconds and peak RSS, and the ONNX Runtime
spinning switch the spinning benchmark applies."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


def _measured_in_a_small_parent(cmd: list[str]):
    """``measured_run(cmd)`` from a fresh, small Python process: a child's peak RSS as the
    kernel reports it can include its parent's pages from before exec (pytest is large here)."""
    import json
    import subprocess

    code = (f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); from common import measured_run; "
            f"m = measured_run({cmd!r}); print(json.dumps([m.cpu, m.rss_mib, m.wall, m.stderr]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    cpu, rss, wall, stderr = json.loads(out.strip().splitlines()[-1])
    from types import SimpleNamespace

    return SimpleNamespace(cpu=cpu, rss_mib=rss, wall=wall, stderr=stderr)


def test_measured_run_counts_the_childs_cpu_and_memory():
    measured_run = _measured_in_a_small_parent

    burn = ("import time, sys; b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            "t = time.process_time(); x = 0\nwhile time.process_time() - t < 0.4: x += 1\n"
            "print('done', file=sys.stderr)")
    m = measured_run([sys.executable, "-c", burn])
    assert m.cpu >= 0.35
    assert m.rss_mib >= 150
    assert m.wall >= m.cpu / 64  # sane: not zero
    assert "done" in m.stderr
    idle = measured_run([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert idle.cpu < m.cpu and idle.rss_mib < 100


def test_measured_run_reports_a_failed_command():
    from common import measured_run

    with pytest.raises(SystemExit, match="boom"):
        measured_run([sys.executable, "-c", "import sys; sys.exit('boom')"])


def test_spinning_patch_sets_the_session_option(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    monkeypatch.setattr(ort, "InferenceSession", ort.InferenceSession)  # undone after the test
    from bench_ort_spinning import SPIN_KEY, patch_onnxruntime

    opts = ort.SessionOptions()
    patch_onnxruntime("default")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    with pytest.raises(RuntimeError):  # left to ONNX Runtime: no entry at all
        opts.get_session_config_entry(SPIN_KEY)
    patch_onnxruntime("0")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    assert opts.get_session_config_entry(SPIN_KEY) == "0"
