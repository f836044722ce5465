"""``backend="auto"``'s speed figure stays right: measured again when the machine or the
library versions change or the saved figure is implausible, and a noisy figure never locks
in the slow path."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from wildspace.detect import onnx_backend  # noqa: E402
from wildspace.detect.cpu import machine_fingerprint, resolve_threads  # noqa: E402
from wildspace.detect.exported import ExportedYoloDetector  # noqa: E402
from wildspace.detect.factory import build_detector  # noqa: E402
from wildspace.detect.onnx_backend import prefer_exported, speed_record_current  # noqa: E402


def _record(speedup: float, noisy: bool = False, **fingerprint) -> dict:
    fp = {**machine_fingerprint(resolve_threads()), **fingerprint}
    return {"speed": {"version": onnx_backend.SPEED_RECORD_VERSION, "speedup": speedup, "noisy": noisy,
                      "fingerprint": fp}}


def test_auto_rule():
    assert prefer_exported("onnx", _record(0.1))
    assert not prefer_exported("auto", _record(0.5))  # a clean figure: eager clearly faster
    assert prefer_exported("auto", _record(0.5, noisy=True))  # noise never picks the slow path
    assert prefer_exported("auto", _record(0.9))  # within the margin: the default fast path
    assert prefer_exported("auto", _record(2.0))


@pytest.mark.parametrize("change", [{"cpu": "another CPU"}, {"flags": "0" * 12}, {"cores": 64},
                                    {"threads": 17}, {"torch": "1.0.0"}, {"onnxruntime": "0.1"}])
def test_a_record_from_another_machine_or_versions_is_not_current(change):
    threads = resolve_threads()
    assert speed_record_current(_record(1.5), threads)
    assert not speed_record_current(_record(1.5, **change), threads)


def test_bare_and_implausible_figures_are_not_current():
    threads = resolve_threads()
    assert not speed_record_current({"speedup_vs_torch": 0.37}, threads)  # from before fingerprints
    assert not speed_record_current(_record(0.0), threads)
    assert not speed_record_current(_record(0.01), threads)
    assert not speed_record_current(_record(float("nan")), threads)
    # a huge figure keeps the export (the safe choice) and is not measured again every run:
    # eager PyTorch under load measured 40-52x slower on the probe here
    assert speed_record_current(_record(52.0), threads) and speed_record_current(_record(1000.0), threads)


def test_measure_speed_record_shape(model_files, tmp_path):
    det = build_detector(model_files["mdv5_p6"], input_size=256, backend="onnx", export_dir=tmp_path)
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    speed = meta["speed"]
    assert speed["fingerprint"] == machine_fingerprint(det.threads)
    assert speed["speedup"] > 0 and speed["cpu_speedup"] > 0 and speed["spread"] >= 1.0
    assert speed["noisy"] == (speed["spread"] > onnx_backend.NOISE_SPREAD)
    assert speed_record_current(meta, det.threads)


@pytest.mark.parametrize("stale", ["fingerprint", "bare", "implausible"])
def test_auto_measures_a_stale_record_again(model_files, tmp_path, monkeypatch, stale):
    weights = model_files["yolov9"]
    calls = []
    real = onnx_backend.measure_speed

    def counted(*a, **k):
        calls.append(1)
        return {**real(*a, **k), "speedup": 2.0, "noisy": False}  # a clean "export faster" result

    monkeypatch.setattr(onnx_backend, "measure_speed", counted)
    build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path)
    assert len(calls) == 1
    (meta_file,) = tmp_path.glob("*.json")
    meta = json.loads(meta_file.read_text())
    if stale == "fingerprint":  # saved on a busy machine elsewhere, clearly "slower"
        meta["speed"].update(speedup=0.37, fingerprint={**meta["speed"]["fingerprint"], "cpu": "elsewhere"})
    elif stale == "bare":
        del meta["speed"]
        meta["speedup_vs_torch"] = 0.37
    else:
        meta["speed"]["speedup"] = 0.001
    meta_file.write_text(json.dumps(meta))
    det = build_detector(weights, input_size=256, backend="auto", export_dir=tmp_path)
    assert len(calls) == 2  # measured again
    assert not isinstance(det, ExportedYoloDetector) and det.backend == "onnx"
    fresh = json.loads(meta_file.read_text())
    assert fresh["speed"]["fingerprint"] == machine_fingerprint(det.threads) and fresh["speed"]["speedup"] == 2.0
    again = build_detector(weights, input_size=256, backend="auto", export_dir=tmp_path)
    assert isinstance(again, ExportedYoloDetector) and len(calls) == 2  # current now: torch-free, no timing
    build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path)
    assert len(calls) == 2  # an explicit backend never times anything


def test_a_current_clean_slow_figure_keeps_eager_torch(model_files, tmp_path):
    weights = model_files["yolov9"]
    build_detector(weights, input_size=256, backend="onnx", export_dir=tmp_path)
    (meta_file,) = tmp_path.glob("*.json")
    meta = json.loads(meta_file.read_text())
    meta["speed"].update(speedup=0.5, noisy=False)
    meta_file.write_text(json.dumps(meta))
    det = build_detector(weights, input_size=256, backend="auto", export_dir=tmp_path)
    assert det.backend == "torch" and not isinstance(det, ExportedYoloDetector)
    meta["speed"]["noisy"] = True  # the same figure, but the rounds disagreed: keep the fast path
    meta_file.write_text(json.dumps(meta))
    assert isinstance(build_detector(weights, input_size=256, backend="auto", export_dir=tmp_path),
                      ExportedYoloDetector)
