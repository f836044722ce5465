"""detect_files: an error in one image's letterbox or inference fails that image only."""

from __future__ import annotations

import numpy as np
from PIL import Image

from wildspace.detect.base import Prepared
from wildspace.detect.pipeline import INFERENCE_FAILURE, detect_files
from wildspace.types import Detection, DetectorInfo


class FussyDetector:
    """Refuses to prepare images 7 px wide, and its network raises on any batch holding an
    image 9 px wide (as an out-of-memory or a bad input would)."""

    def __init__(self):
        self.info = DetectorInfo(name="fussy", labels=("animal",), input_size=64)
        self.batches: list[int] = []

    def prepare(self, image: np.ndarray) -> Prepared:
        if image.shape[1] == 7:
            raise RuntimeError("OpenCV: bad size")
        return Prepared(key="all", data=image, orig_hw=image.shape[:2])

    def run(self, batch, conf_threshold):
        self.batches.append(len(batch))
        if any(p.data.shape[1] == 9 for p in batch):
            raise MemoryError("out of memory")
        return [(Detection(0, 0.9, (0.1, 0.1, 0.2, 0.2)),) for _ in batch]


def test_one_bad_image_fails_alone(tmp_path):
    files = []
    for i, w in enumerate([8, 8, 9, 8, 7, 8]):
        p = tmp_path / f"im{i}.png"
        Image.new("RGB", (w, 8)).save(p)
        files.append((p, p.name))
    det = FussyDetector()
    results = {r.file: r for r in detect_files(det, files, 0.1, batch_size=4, workers=1)}
    assert set(results) == {f"im{i}.png" for i in range(6)}
    assert "cannot prepare image for the detector: RuntimeError: OpenCV: bad size" in results["im4.png"].failure
    assert results["im2.png"].failure == f"{INFERENCE_FAILURE}: MemoryError: out of memory"
    for name in ("im0.png", "im1.png", "im3.png", "im5.png"):
        assert not results[name].failed and len(results[name].detections) == 1
    assert det.batches[0] == 4 and 1 in det.batches  # the failing batch was run again one by one
