"""The detectors' CPU thread count is the project's choice (``WILDSPACE_THREADS``, default all
available cores), not whatever a library call set on the way (ultralytics' ``select_device``
sets ``min(8, cores - 1)``)."""

from __future__ import annotations

import pytest
import torch

from wildspace.detect.cpu import available_cores, machine_fingerprint, resolve_threads
from wildspace.detect.factory import build_detector
from wildspace.detect.onnx_backend import SPIN_KEY
from wildspace.settings import load_settings


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_every_available_core(monkeypatch):
    monkeypatch.delenv("WILDSPACE_THREADS", raising=False)
    assert resolve_threads() == available_cores() >= 1
    monkeypatch.setenv("WILDSPACE_THREADS", "3")
    assert resolve_threads() == 3 and resolve_threads(5) == 5
    with pytest.raises(ValueError, match="at least 1"):
        resolve_threads(0)
    monkeypatch.setenv("WILDSPACE_THREADS", "many")
    with pytest.raises(ValueError, match="WILDSPACE_THREADS must be a positive integer"):
        load_settings()


@pytest.mark.parametrize("key", ["yolov9", "mdv5_p6"])
def test_torch_threads_after_loading_are_the_projects(model_files, monkeypatch, key):
    monkeypatch.delenv("WILDSPACE_THREADS", raising=False)
    torch.set_num_threads(max(1, available_cores() + 2))  # anything but the project's choice
    det = build_detector(model_files[key], input_size=256)
    assert det.threads == available_cores()
    assert torch.get_num_threads() == available_cores()
    monkeypatch.setenv("WILDSPACE_THREADS", "3")
    det = build_detector(model_files[key], input_size=256)
    assert det.threads == 3 and torch.get_num_threads() == 3
    assert build_detector(model_files[key], input_size=256, threads=1).threads == 1
    assert torch.get_num_threads() == 1


def test_onnx_runtime_sessions_use_the_projects_threads(model_files, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("WILDSPACE_THREADS", "3")
    first = build_detector(model_files["yolov9"], input_size=256, backend="onnx", export_dir=tmp_path)
    assert first._onnx.session.get_session_options().intra_op_num_threads == 3
    again = build_detector(model_files["yolov9"], input_size=256, backend="onnx", export_dir=tmp_path,
                           threads=2)  # the torch-free exported path
    assert type(again).__name__ == "ExportedYoloDetector"
    # two sessions of one thread each, so the pipeline runs two batches at once
    assert again.threads == 2 and again.parallel_batches == 2 == len(again.network.sessions)
    assert [s.get_session_options().intra_op_num_threads for s in again.network.sessions] == [1, 1]
    one = build_detector(model_files["yolov9"], input_size=256, backend="onnx", export_dir=tmp_path, threads=1)
    assert one.parallel_batches == 1 and one.network.session.get_session_options().intra_op_num_threads == 1
    # idle threads sleep rather than spin (bench/bench_ort_spinning.py measured the saving)
    for session in (first._onnx.session, *again.network.sessions):
        assert session.get_session_options().get_session_config_entry(SPIN_KEY) == "0"


def test_fingerprint_names_what_a_speed_figure_depends_on():
    fp = machine_fingerprint(2)
    assert fp["threads"] == 2 and fp["cores"] == available_cores()
    assert fp["torch"] == torch.__version__.split("+")[0] or fp["torch"].startswith(torch.__version__.split("+")[0])
    assert machine_fingerprint(3) != fp
