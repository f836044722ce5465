"""MDv5-shaped (legacy YOLOv5 P6) and MDv6-shaped (ultralytics) random checkpoints load
through a seeded Hub cache and the production fetch + build code, and detect."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import (
    MD_LABELS,
    make_malicious_checkpoint,
    make_yolov5_checkpoint,
    seed_hub_cache,
    sha256,
    write_spec,
)
from wildspace.detect.base import detect_images
from wildspace.detect.factory import detect_family
from wildspace.hub.safe_pickle import UnsafeCheckpoint, checkpoint_globals
from wildspace.services.detectors import DetectorService


def _image(h=360, w=480, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _seed(specs_dir, hub_cache, name, family, src, input_size, **kw):
    rev = seed_hub_cache(hub_cache, f"test-org/{name}", src.name, src)
    write_spec(specs_dir, name, family, src.name, sha256(src), input_size=input_size,
               hub={"repo_id": f"test-org/{name}", "revision": rev, "path_in_repo": src.name}, **kw)


def _check_detections(dets, labels=MD_LABELS):
    for d in dets:
        assert 0 <= d.class_id < len(labels)
        assert 0 <= d.conf <= 1
        x, y, w, h = d.bbox_xywh_norm
        assert -1e-6 <= x <= 1 and -1e-6 <= y <= 1 and w >= 0 and h >= 0
    assert [d.conf for d in dets] == sorted((d.conf for d in dets), reverse=True)


def test_mdv5_shaped_p6_checkpoint_via_hub_cache(specs_dir, hub_cache, model_files):
    src = model_files["mdv5_p6"]
    assert "models.yolo.Model" in checkpoint_globals(src)
    _seed(specs_dir, hub_cache, "test-mdv5", "yolov5-legacy", src, 1280, stride=64)
    det = DetectorService().load("test-mdv5")
    assert det.info.labels == tuple(MD_LABELS)
    assert det.stride == 64
    p = det.prepare(_image(720, 1280))
    assert p.key == (768, 1280)  # minimum rectangle at stride 64
    results = detect_images(det, [_image(720, 1280), _image(300, 200, 1)], conf_threshold=0.0001)
    assert len(results) == 2
    for dets in results:
        _check_detections(dets)
    assert sum(len(r) for r in results) > 0  # random weights still produce boxes at this threshold


@pytest.mark.parametrize("key", ["yolov9", "yolov10"])
def test_mdv6_shaped_ultralytics_checkpoints_via_hub_cache(specs_dir, hub_cache, model_files, key):
    src = model_files[key]
    assert detect_family(src) == "ultralytics"
    _seed(specs_dir, hub_cache, f"test-mdv6-{key}", "ultralytics", src, 320)
    det = DetectorService().load(f"test-mdv6-{key}")
    assert det.info.labels == tuple(MD_LABELS)
    results = detect_images(det, [_image(), _image(200, 300, 2)], conf_threshold=0.0001)
    assert len(results) == 2
    for dets in results:
        _check_detections(dets)


@pytest.mark.slow
def test_rtdetr_checkpoint_via_hub_cache(specs_dir, hub_cache, rtdetr_file):
    _seed(specs_dir, hub_cache, "test-rtdetr", "ultralytics", rtdetr_file, 320)
    det = DetectorService().load("test-rtdetr")
    assert type(det.model).__name__ == "RTDETR"
    (dets,) = detect_images(det, [_image()], conf_threshold=0.0)
    _check_detections(dets)


def test_weights_file_family_and_labels_are_read_from_the_checkpoint(tmp_path, model_files):
    coco = make_yolov5_checkpoint(tmp_path / "five.pt", variant="n", labels=["a", "b", "c", "d", "e"])
    det = DetectorService().load(weights=coco)
    assert det.info.labels == ("a", "b", "c", "d", "e")
    assert det.info.input_size == 640
    det6 = DetectorService().load(weights=model_files["mdv5_p6"])
    assert det6.info.input_size == 1280


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = make_malicious_checkpoint(tmp_path / "evil.pt", marker)
    for attempt in (lambda: DetectorService().load(weights=evil), lambda: detect_family(evil)):
        with pytest.raises(UnsafeCheckpoint, match="system"):
            attempt()
    assert not marker.exists()


def test_payload_hidden_in_a_real_yolov5_checkpoint_is_refused(tmp_path):
    from tests.factories import Evil
    from wildspace.detect.yolov5_legacy import load_yolov5_checkpoint

    marker = tmp_path / "pwned"
    evil = make_yolov5_checkpoint(tmp_path / "md.pt", variant="n", extra={"meta": Evil(marker)})
    with pytest.raises(UnsafeCheckpoint, match="outside the allowlist"):
        load_yolov5_checkpoint(evil)
    with pytest.raises(UnsafeCheckpoint):
        DetectorService().import_model(evil, "sneaky")
    assert not marker.exists()


def test_non_checkpoints_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(UnsafeCheckpoint, match="not a zip-format"):
        detect_family(junk)
