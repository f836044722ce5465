"""Species in batch and video runs (the pipeline layer composing detection and classification)."""

from __future__ import annotations

import csv

import pytest

from tests.classify.factories import SERENGETI
from wildspace.classify.species import SpeciesOptions, SpeciesStep
from wildspace.detect.base import Prepared
from wildspace.formats.megadetector import read_results
from wildspace.types import Detection, DetectorInfo

ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"


class FixedDetector:
    """Finds the same animal and person in every image (a stand-in for any detector family)."""

    info = DetectorInfo("fixed", ("animal", "person", "vehicle"), 64)

    def prepare(self, image):
        return Prepared(key=0, data=None, orig_hw=image.shape[:2])

    def run(self, batch, conf_threshold):
        return [(Detection(0, 0.9, (0.2, 0.2, 0.5, 0.5)), Detection(1, 0.8, (0.1, 0.1, 0.2, 0.2)))
                for _ in batch]


def test_video_frames_get_species_and_an_annotated_video(classifiers, shared_data, tmp_path):
    from wildspace.detect.video import detect_video
    from wildspace.media.video import Sampling

    step = SpeciesStep(classifiers.load("tiny-timm"), SpeciesOptions(threshold=0.0))
    r = detect_video(FixedDetector(), shared_data / "video" / "chimp.mp4", "chimp.mp4", 0.1,
                     Sampling(every_seconds=5), annotated_path=tmp_path / "a.mp4", species=step)
    assert not r.failed and r.frames_processed == (0, 150, 300)
    animals = [d for d in r.detections if d.class_id == 0]
    people = [d for d in r.detections if d.class_id == 1]
    assert len(animals) == 3 and all(len(d.classifications) == 3 for d in animals)
    assert all(d.frame_number in (0, 150, 300) for d in animals)
    assert all(not d.classifications for d in people)
    assert (tmp_path / "a.mp4").stat().st_size > 1000


@pytest.fixture(scope="module")
def yolov5n_service(tmp_path_factory, shared_data):
    from wildspace.services.detectors import DetectorService
    from wildspace.settings import BUILTIN_SPECS_DIR, Settings

    home = tmp_path_factory.mktemp("runs-home")
    settings = Settings(home=home, spec_dirs=(BUILTIN_SPECS_DIR, home / "specs"), offline=True,
                        hf_cache=home / "hf")
    service = DetectorService(settings)
    service.import_model(shared_data / "weights" / "yolov5n.pt", "coco-yolov5n")
    return service


@pytest.mark.slow
def test_image_batch_exports_carry_species(yolov5n_service, classifiers, shared_data, tmp_path):
    from wildspace.runs.batch import run_image_batch

    zebra = tmp_path / ZEBRA
    zebra.write_bytes((shared_data / "camera-trap" / "megadetector-test" / ZEBRA).read_bytes())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    step = SpeciesStep(classifiers.load("tiny-tv"), SpeciesOptions(threshold=0.99, min_detection_conf=0.3))
    out = run_image_batch(yolov5n_service, [zebra, broken], "coco-yolov5n", 0.3, tmp_path / "work",
                          exports=("md-json", "csv"), species=step)
    doc = read_results(out.exports["md-json"])
    assert doc["classification_categories"] == {str(i): s for i, s in enumerate(SERENGETI)}
    dets = next(im for im in doc["images"] if im["file"] == ZEBRA)["detections"]
    assert len(dets) == 3 and all(len(d["classifications"]) == 3 for d in dets)
    rows = list(csv.DictReader(open(out.exports["csv"], encoding="utf-8")))
    assert [r["label"] for r in rows] == ["zebra"] * 3
    assert {r["species"] for r in rows} == {"unknown"}  # nothing reaches 0.99 with random weights
    assert all(0 < float(r["species_conf"]) < 0.99 for r in rows)
