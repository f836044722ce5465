"""Exports users' tools read: CSV, COCO Camera Traps, Camtrap DP, crops, sorted folders."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest
from PIL import Image

from wildspace.formats import camtrap_dp
from wildspace.formats.coco_ct import coco_to_results, read_coco, to_coco, validate_coco
from wildspace.formats.exports import EXPORT_KINDS, ResultSet, write_exports
from wildspace.formats.megadetector import FormatError
from wildspace.types import Detection, ImageResult

LABELS = ("animal", "person", "vehicle")


@pytest.fixture
def result_set(tmp_path):
    """Four files: a deer + person, an empty frame, a vehicle in a second camera, a failure."""
    root = tmp_path / "card"
    files = {}
    for name, size in [("cam1/a.jpg", (400, 300)), ("cam1/b.jpg", (400, 300)), ("cam2/c.jpg", (640, 480))]:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        exif[0x8769] = {0x9003: "2024:05:06 07:08:09"}
        Image.new("RGB", size, (90, 120, 60)).save(p, exif=exif)
        files[name] = p
    results = [
        ImageResult("cam1/a.jpg", (Detection(0, 0.9, (0.1, 0.2, 0.3, 0.4)), Detection(1, 0.6, (0.5, 0.5, 0.2, 0.2)),
                                   Detection(0, 0.1, (0.0, 0.0, 0.1, 0.1))), width=400, height=300),
        ImageResult("cam1/b.jpg", (), width=400, height=300),
        ImageResult("cam2/c.jpg", (Detection(2, 0.75, (0.25, 0.25, 0.5, 0.5)),)),
        ImageResult("cam2/broken.jpg", None, failure="corrupt or truncated image"),
    ]
    return ResultSet(results, LABELS, "md_v5a.0.0.pt", {"model_name": "megadetector-v5a"}, files)


def test_all_exports_are_written(result_set, tmp_path):
    paths = write_exports(result_set, tmp_path / "out", 0.2)
    assert set(paths) == set(EXPORT_KINDS)
    assert all(p.is_file() for p in paths.values())


def test_csv_rows(result_set, tmp_path):
    paths = write_exports(result_set, tmp_path / "out", 0.2, ["csv"])
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [(r["file"], r["label"], r["kind"], r["conf"]) for r in rows] == [
        ("cam1/a.jpg", "animal", "animal", "0.900"), ("cam1/a.jpg", "person", "human", "0.600"),
        ("cam2/c.jpg", "vehicle", "vehicle", "0.750")]
    images = {r["file"]: r for r in csv.DictReader(open(tmp_path / "out" / "wildspace_images.csv"))}
    assert images["cam1/a.jpg"]["status"] == "human" and images["cam1/a.jpg"]["max_conf_animal"] == "0.900"
    assert images["cam1/b.jpg"]["status"] == "empty"
    assert images["cam2/broken.jpg"]["status"] == "failed" and images["cam2/broken.jpg"]["failure"]


def test_coco_round_trip(result_set):
    doc = to_coco(result_set.results, LABELS, result_set.files, threshold=0.0)
    validate_coco(doc)
    assert doc["categories"][0] == {"id": 0, "name": "empty"}
    by_image = {im["id"]: im for im in doc["images"]}
    assert by_image["cam2/c.jpg"]["width"] == 640  # read from the file header
    assert by_image["cam1/a.jpg"]["datetime"] == "2024-05-06 07:08:09"
    assert by_image["cam2/broken.jpg"]["corrupt"] is True
    ann = next(a for a in doc["annotations"] if a["image_id"] == "cam2/c.jpg")
    assert ann["bbox"] == [160.0, 120.0, 320.0, 240.0] and ann["category_id"] == 3 and ann["score"] == 0.75
    assert any(a["category_id"] == 0 and a["image_id"] == "cam1/b.jpg" for a in doc["annotations"])
    back, labels = coco_to_results(json.loads(json.dumps(doc)))
    assert labels == LABELS
    original = {r.file: r for r in result_set.results}
    for r in back:
        o = original[r.file]
        assert r.failed == o.failed
        if not r.failed:
            assert len(r.detections) == len(o.detections)
            for a, b in zip(sorted(r.detections, key=lambda d: -d.conf), sorted(o.detections, key=lambda d: -d.conf)):
                assert a.class_id == b.class_id and a.conf == pytest.approx(b.conf, abs=1e-3)
                assert a.bbox_xywh_norm == pytest.approx(b.bbox_xywh_norm, abs=1e-3)


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate id"),
    (lambda d: d["annotations"][0].update(image_id="nope"), "image_id"),
    (lambda d: d["annotations"][0].update(category_id=42), "category_id"),
    (lambda d: d["images"][0].pop("height"), "width and height"),
    (lambda d: d.pop("categories"), "categories"),
])
def test_coco_validator(result_set, mutate, where):
    doc = to_coco(result_set.results, LABELS, result_set.files)
    mutate(doc)
    with pytest.raises(FormatError, match=where):
        validate_coco(doc)


def test_reads_human_coco_boxes(shared_data):
    doc = read_coco(shared_data / "camera-trap" / "ena24-small" / "coco_annotations.json")
    results, labels = coco_to_results(doc)
    assert len(results) == 21 and len(labels) >= 1


def test_camtrap_dp_package_passes_frictionless_validation(result_set, tmp_path):
    out = camtrap_dp.write_package(result_set, tmp_path / "pkg", 0.2)
    assert camtrap_dp.validate_package(out) == []
    rows = list(csv.DictReader(open(out / "observations.csv")))
    obs = [o for o in rows if o["observationLevel"] == "media"]
    assert sorted(o["observationType"] for o in obs) == ["animal", "blank", "human", "vehicle"]
    events = [o for o in rows if o["observationLevel"] == "event"]
    # cam1/a.jpg and cam1/b.jpg (same second) are one event: an animal and a human; cam2 another
    assert sorted((o["deploymentID"], o["observationType"], o["count"]) for o in events) == [
        ("cam1", "animal", "1"), ("cam1", "human", "1"), ("cam2", "vehicle", "1")]
    assert all(o["eventID"] and not o["mediaID"] for o in events)
    assert {o["eventID"] for o in obs if o["deploymentID"] == "cam1"} == {o["eventID"] for o in events if o["deploymentID"] == "cam1"}
    deer = next(o for o in obs if o["observationType"] == "animal")
    assert (deer["bboxX"], deer["bboxY"], deer["bboxWidth"], deer["bboxHeight"]) == ("0.1000", "0.2000", "0.3000", "0.4000")
    assert deer["classificationMethod"] == "machine" and deer["classificationProbability"] == "0.900"
    media = list(csv.DictReader(open(out / "media.csv")))
    assert {m["timestamp"] for m in media} == {"2024-05-06T07:08:09+00:00"}  # EXIF time, UTC offset
    assert len(media) == 3  # the failed file is not media
    deps = {d["deploymentID"] for d in csv.DictReader(open(out / "deployments.csv"))}
    assert deps == {"cam1", "cam2"}
    descriptor = json.loads((out / "datapackage.json").read_text())
    assert descriptor["profile"] == camtrap_dp.PROFILE_URL
    assert descriptor["temporal"] == {"start": "2024-05-06", "end": "2024-05-06"}


def test_camtrap_dp_validation_catches_errors(result_set, tmp_path):
    out = camtrap_dp.write_package(result_set, tmp_path / "pkg", 0.2)
    text = (out / "observations.csv").read_text()
    (out / "observations.csv").write_text(text.replace(",animal,", ",dog,", 1))
    assert any("constraint" in p for p in camtrap_dp.validate_package(out))
    out2 = camtrap_dp.write_package(result_set, tmp_path / "pkg2", 0.2)
    d = json.loads((out2 / "datapackage.json").read_text())
    del d["project"]
    (out2 / "datapackage.json").write_text(json.dumps(d))
    assert any("project" in p for p in camtrap_dp.validate_package(out2))


def test_crops_and_sorted_zips(result_set, tmp_path):
    paths = write_exports(result_set, tmp_path / "out", 0.2, ["crops", "sorted"])
    with zipfile.ZipFile(paths["crops"]) as z:
        names = sorted(z.namelist())
        assert names == ["animal/cam1/a_0_0.90.jpg", "person/cam1/a_1_0.60.jpg", "vehicle/cam2/c_0_0.75.jpg"]
        with z.open("vehicle/cam2/c_0_0.75.jpg") as f:
            assert Image.open(f).size == (320, 240)
    with zipfile.ZipFile(paths["sorted"]) as z:
        assert sorted(z.namelist()) == ["empty/cam1/b.jpg", "person/cam1/a.jpg", "vehicle/cam2/c.jpg"]


def test_exports_that_need_images_say_so(result_set, tmp_path):
    no_files = ResultSet(result_set.results, LABELS, "x.pt", {}, {})
    with pytest.raises(ValueError, match="needs the images"):
        write_exports(no_files, tmp_path / "o", 0.2, ["crops"])


NASTY = ["=cmd|' /C calc'!A0.jpg", "+sum.jpg", "-minus.jpg", "@at.jpg", "\ttab.jpg", "\rcr.jpg",
         "cam1/plain.jpg"]


def test_safe_cell_neutralises_formulas_and_keeps_numbers():
    from wildspace.formats.csv_export import safe_cell

    for text in ("=1+2", "+A1", "-A1", "@SUM(A1)", "\t=1", "\r=1", "-", "-inf", "+nan", "-1+1", "=cmd|' /C calc'!A0"):
        assert safe_cell(text) == "'" + text
    for number in ("-0.5", "+3", "-1e-3", "-.5", "12", "0.900"):
        assert safe_cell(number) == number  # plain numbers stay numbers
    for other in (-0.5, 3, None, "", "a=b", "cam1/a.jpg", "'=quoted"):
        assert safe_cell(other) == other


def _nasty_results():
    det = Detection(0, 0.9, (0.1, 0.2, 0.3, 0.4))
    results = [ImageResult(f, (det,), width=40, height=30) for f in NASTY]
    results.append(ImageResult("-broken.jpg", None, failure="-corrupt =1"))
    return ResultSet(results, ('=HYPERLINK("http://x")', "person", "vehicle"), "m", {}, {})


def test_csv_exports_neutralise_formula_cells(tmp_path):
    from wildspace.formats.csv_export import FORMULA_STARTS, safe_cell

    rs = _nasty_results()
    write_exports(rs, tmp_path / "out", 0.2, ["csv"])
    detections = list(csv.DictReader(open(tmp_path / "out" / "wildspace_detections.csv", newline="")))
    images = list(csv.DictReader(open(tmp_path / "out" / "wildspace_images.csv", newline="")))
    assert sorted(r["file"] for r in detections) == sorted(safe_cell(f) for f in NASTY)
    assert "'=cmd|' /C calc'!A0.jpg" in {r["file"] for r in detections}
    assert {r["label"] for r in detections} == {"'=HYPERLINK(\"http://x\")"}
    assert {r["conf"] for r in detections} == {"0.900"} and {r["bbox_x"] for r in detections} == {"0.1000"}
    broken = next(r for r in images if r["status"] == "failed")
    assert (broken["file"], broken["failure"]) == ("'-broken.jpg", "'-corrupt =1")
    for row in detections + images:
        for cell in row.values():
            assert not cell.startswith(FORMULA_STARTS), (row, cell)


def test_camtrap_dp_cells_are_neutralised_and_the_package_still_validates(tmp_path):
    import datetime as dt

    from wildspace.formats.csv_export import FORMULA_STARTS
    from wildspace.formats.timestamps import CaptureTime

    rs = _nasty_results()
    left_out = camtrap_dp.write_package(rs, tmp_path / "none", 0.2, camtrap_dp.PackageOptions(missing_times="leave-out"))
    assert camtrap_dp.validate_package(left_out) == [] and not list(csv.DictReader(open(left_out / "media.csv")))
    when = {r.file: CaptureTime(dt.datetime(2024, 5, 6, 7, 8, 9), "filename") for r in rs.results}
    tables = camtrap_dp.build_tables(rs, 0.2, times=when)
    out = camtrap_dp.write_package(rs, tmp_path / "pkg", 0.2, tables=tables)
    assert camtrap_dp.validate_package(out) == []
    media = list(csv.DictReader(open(out / "media.csv", newline="")))
    assert "'=cmd|' /C calc'!A0.jpg" in {m["filePath"] for m in media}
    assert "'@at.jpg" in {m["fileName"] for m in media}
    deps = {d["deploymentID"] for d in csv.DictReader(open(out / "deployments.csv", newline=""))}
    assert "'=cmd|' " in deps and {m["deploymentID"] for m in media} == deps  # keys still match
    for table in ("media", "observations", "deployments"):
        for row in csv.DictReader(open(out / f"{table}.csv", newline="")):
            for key, cell in row.items():
                is_number = cell.lstrip("+-").replace(".", "", 1).isdigit()
                assert is_number or not cell.startswith(FORMULA_STARTS), (table, key, cell)
