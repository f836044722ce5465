"""MegaDetector batch format: writer conventions, validation, round trip, other tools' files."""

from __future__ import annotations

import copy
import json

import pytest

from wildspace.formats.megadetector import (
    FormatError,
    build_results,
    parse_results,
    read_results,
    validate,
    write_results,
)
from wildspace.types import Detection, ImageResult


def _doc():
    results = [
        ImageResult("b/cam1.jpg", (Detection(0, 0.91234, (0.1, 0.2, 0.3, 0.4)),
                                   Detection(1, 0.5, (0.123456, 0.5, 0.1, 0.1)))),
        ImageResult("a/empty.jpg", ()),
        ImageResult("a/broken.jpg", None, failure="corrupt or truncated image"),
    ]
    return build_results(results, ["animal", "person", "vehicle"], "md_v5a.0.0.pt",
                         {"megadetector_version": "v5a.0.0", "typical_detection_threshold": 0.2,
                          "conservative_detection_threshold": 0.05})


def test_writer_follows_md_conventions():
    doc = _doc()
    assert float(doc["info"]["format_version"]) >= 1.5
    assert doc["info"]["detector"] == "md_v5a.0.0.pt"
    assert doc["info"]["detector_metadata"]["typical_detection_threshold"] == 0.2
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    files = [im["file"] for im in doc["images"]]
    assert files == sorted(files)
    by = {im["file"]: im for im in doc["images"]}
    assert by["a/empty.jpg"]["detections"] == []
    assert by["a/broken.jpg"] == {"file": "a/broken.jpg", "failure": "corrupt or truncated image",
                                  "detections": None}
    d0, d1 = by["b/cam1.jpg"]["detections"]
    assert d0 == {"category": "1", "conf": 0.912, "bbox": [0.1, 0.2, 0.3, 0.4]}
    assert d1["category"] == "2" and d1["bbox"][0] == 0.1235


def test_round_trip(tmp_path):
    doc = _doc()
    path = write_results(doc, tmp_path / "out.json")
    again = read_results(path)
    assert again == json.loads(json.dumps(doc))
    parsed = parse_results(again)
    assert {r.file for r in parsed} == {"a/empty.jpg", "a/broken.jpg", "b/cam1.jpg"}
    rebuilt = build_results(parsed, ["animal", "person", "vehicle"], "md_v5a.0.0.pt",
                            doc["info"]["detector_metadata"])
    assert rebuilt["images"] == doc["images"]


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d.pop("info"), "info"),
    (lambda d: d["info"].update(format_version="one"), "format_version"),
    (lambda d: d["detection_categories"].update({"x": "cat"}), "detection_categories"),
    (lambda d: d["images"][0].update(detections=[]), "must be null"),
    (lambda d: d["images"][1].update(detections=None), "must be a list"),
    (lambda d: d["images"][2]["detections"][0].update(category="9"), "category"),
    (lambda d: d["images"][2]["detections"][0].update(conf="high"), "conf"),
    (lambda d: d["images"][2]["detections"][0].update(bbox=[0, 0, 1]), "bbox"),
    (lambda d: d["images"].append({"detections": []}), "file"),
    (lambda d: d["images"][2]["detections"][0].update(classifications=[["7", 0.9]]), "classifications"),
])
def test_validator_names_the_problem(mutate, where):
    doc = copy.deepcopy(_doc())
    mutate(doc)
    with pytest.raises(FormatError, match=where):
        validate(doc)


def test_classifications_are_accepted():
    doc = _doc()
    doc["classification_categories"] = {"1": "deer"}
    doc["images"][2]["detections"][0]["classifications"] = [["1", 0.8]]
    validate(doc)


def test_not_json_is_a_clear_error(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_results(p)


def test_reads_files_written_by_megadetector_itself(shared_data):
    ref = read_results(shared_data / "camera-trap" / "megadetector-test" / "md_v5a_reference_output.json")
    assert len(ref["images"]) == 16
    ena = read_results(shared_data / "camera-trap" / "ena24-small" / "md_annotations.json")
    parsed = parse_results(ena)
    assert len(parsed) == len(ena["images"]) > 0


def _classified_doc():
    results = [ImageResult("cam/zebra.jpg", (
        Detection(0, 0.9, (0.1, 0.2, 0.3, 0.4), classifications=(("2", 0.81234), ("0", 0.1))),
        Detection(0, 0.3, (0.5, 0.5, 0.1, 0.1)),  # below the classification detection threshold
    ))]
    return build_results(results, ["animal", "person", "vehicle"], "md_v5a.0.0.pt",
                         classification_categories={"0": "wildebeest", "1": "guineafowl", "2": "zebra"},
                         classifier="serengeti-test",
                         classifier_metadata={"typical_classification_threshold": 0.5})


def test_classifications_are_written_in_md_form():
    doc = _classified_doc()
    assert doc["classification_categories"] == {"0": "wildebeest", "1": "guineafowl", "2": "zebra"}
    assert doc["info"]["classifier"] == "serengeti-test"
    assert doc["info"]["classifier_metadata"]["typical_classification_threshold"] == 0.5
    d0, d1 = doc["images"][0]["detections"]
    assert d0["classifications"] == [["2", 0.812], ["0", 0.1]]
    assert "classifications" not in d1
    assert "classification_categories" not in _doc()  # unclassified runs look as before


def test_classifications_round_trip_through_file(tmp_path):
    path = write_results(_classified_doc(), tmp_path / "md.json")
    doc = read_results(path)
    (r,) = parse_results(doc)
    assert r.detections[0].classifications == (("2", 0.812), ("0", 0.1))
    assert r.detections[1].classifications == ()
    again = build_results(parse_results(doc), ["animal", "person", "vehicle"], "md_v5a.0.0.pt",
                          classification_categories=doc["classification_categories"],
                          classifier="serengeti-test",
                          classifier_metadata={"typical_classification_threshold": 0.5})
    assert again["images"] == doc["images"]


def test_classification_conf_outside_unit_interval_is_refused():
    doc = _classified_doc()
    doc["images"][0]["detections"][0]["classifications"][0][1] = 1.7
    with pytest.raises(FormatError, match=r"classifications\[0\]"):
        validate(doc)


def test_reads_classifications_written_by_other_tools(shared_data):
    ena = read_results(shared_data / "camera-trap" / "ena24-small" / "md_annotations.json")
    classified = [d for r in parse_results(ena) for d in r.detections or () if d.classifications]
    assert classified and all(c in ena["classification_categories"] for d in classified
                              for c, _ in d.classifications)


def test_result_set_keeps_classifications(tmp_path):
    from wildspace.formats.exports import result_set_from_md

    rs = result_set_from_md(_classified_doc())
    assert rs.classification_categories["2"] == "zebra"
    doc = rs.md_document()
    assert doc["classification_categories"] == _classified_doc()["classification_categories"]
    assert doc["images"][0]["detections"][0]["classifications"][0] == ["2", 0.812]
