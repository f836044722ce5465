"""Parity of the precision paths on the real ``yolov5n.pt`` against the reference
implementation's golden detections, at 640 and 1280 px: the default path (what ``auto``
picks on this machine) must match >= 98 % of the reference boxes with conf >= 0.25
(IoU >= 0.9, |dconf| <= 0.02), and the recorded table that ``auto`` trusts must be what the
paths measure here. Never judged on random-weight networks."""

from __future__ import annotations

import json

import pytest

from wildspace.detect.base import detect_images
from wildspace.detect.factory import build_detector
from wildspace.detect.parity import golden_parity
from wildspace.detect.precision import MEASURED_PARITY, PARITY_MIN_SHARE, resolve_precision
from wildspace.media.images import load_image


@pytest.fixture(scope="module")
def golden(shared_data):
    return json.loads((shared_data / "weights" / "yolov5n_reference_detections.json").read_text())


@pytest.fixture(scope="module")
def images(shared_data, golden):
    folder = shared_data / "camera-trap" / "megadetector-test"
    return {size: [load_image(folder / r["file"]) for r in golden["results_by_size"][str(size)]]
            for size in (640, 1280)}


def _parity(det, golden, images, size):
    refs = golden["results_by_size"][str(size)]
    return golden_parity(refs, detect_images(det, images[size], conf_threshold=0.10))


@pytest.mark.slow
@pytest.mark.parametrize("size", [640, 1280])
def test_default_path_matches_the_reference(shared_data, golden, images, tmp_path, monkeypatch, size):
    monkeypatch.delenv("WILDSPACE_BACKEND")  # the settings' defaults, as the CLI/app/workers get them
    monkeypatch.delenv("WILDSPACE_PRECISION")
    from wildspace.detect.exported import ExportedYoloDetector
    from wildspace.services.detectors import DetectorService

    service = DetectorService()
    assert (service.backend, service.precision) == ("auto", "auto")
    det = service.load(weights=shared_data / "weights" / "yolov5n.pt", image_size=size)
    assert det.precision == resolve_precision("auto", "yolov5-legacy")[0]
    # the first load exports; every later command runs the export alone (with OpenVINO, the
    # graph cut before the head's decoding, wildspace.detect.yolov5_head): both are checked
    later = DetectorService().load(weights=shared_data / "weights" / "yolov5n.pt", image_size=size)
    assert isinstance(later, ExportedYoloDetector) and later is not det
    if later.precision == "bf16":
        assert later.network.head is not None
    for d in (det, later):
        r = _parity(d, golden, images, size)
        assert r["total"] > 0
        assert r["matched"] / r["total"] >= PARITY_MIN_SHARE, f"{r} ({d.backend}, {d.precision})"
        assert r["extra"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("precision,backend,runtime", [("fp32", "torch", "any"), ("fp32", "onnx", "any"),
                                                      ("bf16", "torch", "torch"), ("bf16", "onnx", "openvino")])
def test_recorded_parity_is_what_the_paths_measure(shared_data, golden, images, tmp_path, precision, backend,
                                                   runtime):
    """``auto`` trusts MEASURED_PARITY; this keeps it honest on the machine the tests run on."""
    recorded = MEASURED_PARITY[("yolov5-legacy", precision, runtime)]
    verdicts = []
    for size in (640, 1280):
        det = build_detector(shared_data / "weights" / "yolov5n.pt", input_size=size, backend=backend,
                             precision=precision, export_dir=tmp_path)
        assert (det.backend, det.precision) == (backend, precision)
        if runtime == "openvino":
            assert (getattr(det, "_onnx", None) or det.network).runtime == "openvino"
        r = _parity(det, golden, images, size)
        m, total = recorded.matched[size]
        assert r["total"] == total
        assert abs(r["matched"] - m) <= 1, f"{precision}/{backend} at {size}: measured {r}, recorded {m}/{total}"
        verdicts.append(r["matched"] / r["total"] >= PARITY_MIN_SHARE)
        kept, typical = recorded.recall_at_typical[size]
        assert r["typical_total"] == typical and abs(r["typical_kept"] - kept) <= 1
    if precision == "fp32":
        assert all(verdicts) and recorded.passes
    else:  # a reduced path that passes here but is recorded as failing (or back) needs a new record
        assert all(verdicts) == recorded.passes
