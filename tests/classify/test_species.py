"""Species on detector crops: which boxes, top-k classifications, 'unknown' below the
threshold, batching across images, failures pass through."""

from __future__ import annotations

import numpy as np
import pytest

from tests.classify.factories import SERENGETI
from wildspace.classify.species import (
    SpeciesOptions,
    classify_detections,
    classify_results,
    species_of,
    top_classifications,
)
from wildspace.types import Detection, ImageResult

MD = ("animal", "person", "vehicle")


def _image(seed=0, h=120, w=160):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_top_classifications_are_sorted_ids_with_probabilities():
    assert top_classifications(np.array([0.1, 0.6, 0.05, 0.25]), 3) == (("1", 0.6), ("3", 0.25), ("0", 0.1))


def test_species_reads_unknown_below_threshold():
    d = Detection(0, 0.9, (0, 0, 1, 1), classifications=(("2", 0.4), ("0", 0.3)))
    assert species_of(d, SERENGETI, 0.5) == ("unknown", 0.4)
    assert species_of(d, SERENGETI, 0.3) == ("zebra", 0.4)
    assert species_of(Detection(0, 0.9, (0, 0, 1, 1)), SERENGETI, 0.5) == ("", None)


def test_only_animal_boxes_above_min_conf_are_classified(classifiers):
    clf = classifiers.load("tiny-timm")
    dets = (Detection(0, 0.9, (0.1, 0.1, 0.3, 0.3)), Detection(1, 0.95, (0.5, 0.5, 0.2, 0.4)),
            Detection(0, 0.05, (0.6, 0.1, 0.2, 0.2)), Detection(2, 0.8, (0, 0, 0.5, 0.5)))
    out = classify_detections(clf, _image(), dets, MD, SpeciesOptions(min_detection_conf=0.1, top_k=3))
    assert [bool(d.classifications) for d in out] == [True, False, False, False]
    assert [(d.class_id, d.conf, d.bbox_xywh_norm) for d in out] == [(d.class_id, d.conf, d.bbox_xywh_norm) for d in dets]
    cls = out[0].classifications
    assert len(cls) == 3 and [c for _, c in cls] == sorted((c for _, c in cls), reverse=True)
    # the answer is the classifier's on the crop with margin
    from wildspace.classify.crops import crop_box

    probs = clf.predict([crop_box(_image(), dets[0].bbox_xywh_norm, 0.1)])[0]
    assert cls[0] == (str(int(probs.argmax())), pytest.approx(float(probs.max()), abs=1e-6))


def test_custom_detector_labels_are_classified_unless_people_or_vehicles(classifiers):
    clf = classifiers.load("tiny-tv")
    dets = (Detection(0, 0.9, (0.1, 0.1, 0.3, 0.3)), Detection(1, 0.9, (0.1, 0.1, 0.3, 0.3)))
    out = classify_detections(clf, _image(), dets, ("squirrel", "car"))
    assert bool(out[0].classifications) and not out[1].classifications


class _Counting:
    """Wraps a classifier and records the batch sizes it is asked for."""

    def __init__(self, clf):
        self.clf, self.calls = clf, []

    def predict(self, images, batch_size=32):
        self.calls.append(len(images))
        return self.clf.predict(images, batch_size)


def test_results_stream_batches_across_images_and_keeps_order(classifiers, tmp_path):
    from PIL import Image

    clf = classifiers.load("tiny-timm")
    files, results = {}, []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        Image.fromarray(_image(i)).save(p)
        files[p.name] = p
        results.append(ImageResult(p.name, (Detection(0, 0.9, (0.1, 0.1, 0.4, 0.4)),), width=160, height=120))
    results.insert(2, ImageResult("broken.jpg", None, failure="corrupt"))
    results.insert(4, ImageResult("empty.jpg", ()))
    counting = _Counting(clf)
    out = list(classify_results(counting, results, files, MD, SpeciesOptions(batch_size=2)))
    assert [r.file for r in out] == [r.file for r in results]
    assert out[2] == results[2] and out[2].detections is None and out[4].detections == ()
    assert sum(counting.calls) == 5 and max(counting.calls) >= 2
    for r in out:
        if r.detections:
            image = np.asarray(Image.open(files[r.file]).convert("RGB"))
            (alone,) = classify_detections(clf, image, results[1].detections, MD)
            assert r.detections[0].classifications[0][0] == alone.classifications[0][0]


def test_unreadable_file_keeps_its_detections_unclassified(classifiers, tmp_path):
    bad = tmp_path / "gone.jpg"
    bad.write_bytes(b"")
    r = ImageResult("gone.jpg", (Detection(0, 0.9, (0.1, 0.1, 0.4, 0.4)),))
    (out,) = classify_results(classifiers.load("tiny-timm"), [r], {"gone.jpg": bad}, MD)
    assert out.detections == r.detections and not out.failed


@pytest.mark.parametrize("kw", [{"threshold": 1.5}, {"min_detection_conf": -0.1}, {"top_k": 0}])
def test_bad_options_are_refused(kw):
    with pytest.raises(ValueError):
        SpeciesOptions(**kw)


def test_a_failing_classifier_leaves_boxes_unclassified_and_the_run_goes_on(classifiers, tmp_path):
    from PIL import Image

    class Broken:
        def predict(self, images, batch_size=32):
            raise RuntimeError("CUDA out of memory")

    p = tmp_path / "a.png"
    Image.fromarray(_image()).save(p)
    results = [ImageResult("a.png", (Detection(0, 0.9, (0.1, 0.1, 0.4, 0.4)),)), ImageResult("b.jpg", None, failure="x")]
    out = list(classify_results(Broken(), results, {"a.png": p}, MD))
    assert out == results
