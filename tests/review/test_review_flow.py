"""The review backend on a small uploaded source: paging at a threshold, filters, the
corrections the keys and buttons make, and the corrected MegaDetector JSON and Camtrap DP."""

from __future__ import annotations

import json

import pytest

from wildspace.formats.megadetector import read_results
from wildspace.review.view import Filters

S = "sess"


def test_upload_keeps_low_boxes_and_threshold_changes_what_is_shown(review):
    service, owner, sid = review
    v = service.open(owner, S, sid, 0.2)
    # the failed file is not paged through; names matched under the zip's extra top folder
    assert "1 of 4" in v.where and "cam1/a.jpg" in v.where
    assert v.image is not None and v.image.is_file()
    assert len(v.box_choices) == 1 and "1 more below the threshold" in v.boxes
    v = service.set_view(owner, S, 0.01, Filters())
    assert len(v.box_choices) == 2  # the 0.03 box is in the results: no model run needed
    # category / species / band / uncertain-first filters
    assert service.set_view(owner, S, 0.2, Filters(category="person")).where.count("1 of 1") == 1
    assert "cam1/b.jpg" in service.set_view(owner, S, 0.2, Filters(species="impala")).where
    assert "of 1" in service.set_view(owner, S, 0.2, Filters(band="medium (0.4–0.8)")).where
    v = service.set_view(owner, S, 0.13, Filters(uncertain_first=True))
    assert "3 of 4" in v.where and "cam1/b.jpg" in v.where  # the image shown stays
    assert service.cursor(owner, S).files[0] == "cam2/c.jpg"  # 0.12 is the closest to 0.13


def test_keys_and_buttons_make_corrections_and_the_export_has_them(review, tmp_path):
    from tests.review.md_validator import md_validation_errors
    from wildspace.review.exports import corrected_document, write_md

    service, owner, sid = review
    service.open(owner, S, sid, 0.2)
    v = service.act(owner, S, "accept", "Ann")  # a.jpg: the 0.92 box kept, the 0.03 one rejected
    assert "2 of 4" in v.where and "cam1/b.jpg" in v.where
    assert v.selected == "d0"
    v = service.act(owner, S, "reject", "Ann")  # b.jpg: the impala box is wrong
    assert v.selected == "d1"
    v = service.act(owner, S, "redraw", "Ann", bbox=(0.06, 0.5, 0.2, 0.45))
    v = service.act(owner, S, "species", "Ann", value="human being")
    v = service.act(owner, S, "individual", "Ann", value="P-7")
    v = service.act(owner, S, "accept", "Ann")
    assert "cam2/c.jpg" in v.where
    v = service.act(owner, S, "add", "Ann", bbox=(0.7, 0.1, 0.2, 0.2), class_id=0)
    assert v.selected.startswith("n")
    v = service.act(owner, S, "species", "Ann", value="impala")
    v = service.act(owner, S, "empty", "Ann")  # c.jpg: actually nothing there
    assert "cam2/d.jpg" in v.where
    v = service.act(owner, S, "misfire", "Ann")
    assert "Reviewed 4/4" in v.progress
    with pytest.raises(ValueError, match="no box selected"):
        service.act(owner, S, "reject", "Ann")
    with pytest.raises(ValueError, match="positive width"):
        service.act(owner, S, "add", "Ann", bbox=(0.5, 0.5, 0, 0.1))

    doc = corrected_document(service.opened(owner, sid))
    images = {im["file"]: im for im in doc["images"]}
    a, b, c, d = (images[f"cam{1 if k in 'ab' else 2}/{k}.jpg"] for k in "abcd")
    assert [x["conf"] for x in a["detections"]] == [1.0] and a["detections"][0]["review"] == "accepted"
    assert len(a["original_detections"]) == 2
    assert a["review"]["status"] == "reviewed" and a["review"]["reviewer"] == "Ann"
    (person,) = b["detections"]  # the rejected impala box is gone, kept among the originals
    assert person["bbox"] == [0.06, 0.5, 0.2, 0.45] and person["review"] == "redrawn"
    assert doc["classification_categories"][person["classifications"][0][0]] == "human being"
    assert person["individual_id"] == "P-7"
    assert {o["conf"] for o in b["original_detections"]} == {0.55, 0.31}
    assert c["detections"] == [] and c["review"]["status"] == "empty" and len(c["original_detections"]) == 1
    assert d["review"]["status"] == "misfire"
    assert images["cam2/broken.jpg"]["failure"]
    path = write_md(service.opened(owner, sid), tmp_path / "out.json")
    read_results(path)  # wildspace's own validator
    assert md_validation_errors(path) == []
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # megadetector's import flips it; put back


def test_undecided_boxes_stay_as_the_model_gave_them(review):
    from wildspace.review.exports import corrected_document

    service, owner, sid = review
    service.open(owner, S, sid, 0.2)
    service.move(owner, S, 1)
    service.act(owner, S, "reject", "Bo")  # b.jpg: one box rejected, the image not accepted
    doc = corrected_document(service.opened(owner, sid))
    b = next(im for im in doc["images"] if im["file"] == "cam1/b.jpg")
    assert b["detections"] == [{"category": "2", "conf": 0.31, "bbox": [0.05, 0.5, 0.2, 0.4]}]
    assert b["review"]["status"] == "unreviewed"
    untouched = next(im for im in doc["images"] if im["file"] == "cam1/a.jpg")
    assert "review" not in untouched and len(untouched["detections"]) == 2


def test_camtrap_dp_has_human_classifications_and_validates(review, tmp_path):
    import csv

    from wildspace.formats.camtrap_dp import validate_package
    from wildspace.review.exports import write_camtrap

    service, owner, sid = review
    service.open(owner, S, sid, 0.2)
    service.act(owner, S, "species", "Ann", value="Equus quagga")
    service.act(owner, S, "individual", "Ann", value="Z-1")
    service.act(owner, S, "accept", "Ann")
    service.act(owner, S, "reject", "Ann")
    service.act(owner, S, "reject", "Ann")
    service.act(owner, S, "empty", "Ann")
    out = write_camtrap(service.opened(owner, sid), tmp_path / "dp", 0.2, "Ann", zip_path=tmp_path / "dp.zip")
    assert out.is_file()
    assert validate_package(tmp_path / "dp") == []
    rows = list(csv.DictReader(open(tmp_path / "dp" / "observations.csv", encoding="utf-8")))
    human = [r for r in rows if r["classificationMethod"] == "human"]
    zebra = next(r for r in human if r["scientificName"] == "Equus quagga")
    assert zebra["classifiedBy"] == "Ann" and zebra["individualID"] == "Z-1"
    assert "review:accepted" in zebra["observationTags"]
    assert sum(1 for r in human if r["observationType"] == "blank") == 1  # b.jpg: two boxes rejected, then empty
    assert any(r["classificationMethod"] == "machine" for r in rows)  # d.jpg (not reviewed)
    events = [r for r in rows if r["observationLevel"] == "event"]
    assert any(r["scientificName"] == "Equus quagga" and r["classificationMethod"] == "human"
               and r["individualID"] == "Z-1" for r in events)  # events follow the corrected media rows
    assert json.loads((tmp_path / "dp" / "datapackage.json").read_text())["project"]["individualAnimals"] is True


def test_progress_and_precision_recall_from_the_corrections(review, tmp_path):
    from wildspace.review import progress

    service, owner, sid = review
    service.open(owner, S, sid, 0.2)
    service.act(owner, S, "accept", "Ann")  # a: 0.92 accepted, 0.03 rejected
    service.act(owner, S, "reject", "Ann")  # b: 0.55 rejected
    service.act(owner, S, "accept", "Ann")  # b: 0.31 accepted
    service.act(owner, S, "add", "Ann", bbox=(0.1, 0.1, 0.1, 0.1))  # c: a missed animal
    service.act(owner, S, "accept", "Ann")  # c: 0.12 below 0.2 -> rejected
    o = service.opened(owner, sid)
    s = progress.summary(o)
    assert (s["reviewed"], s["total"]) == (3, 4)
    assert s["classes"] == {"animal": 2, "person": 1}
    rows = {r["threshold"]: r for r in progress.precision_recall(o, (0.01, 0.2, 0.5))}
    assert (rows[0.01]["tp"], rows[0.01]["fp"], rows[0.01]["fn"]) == (2, 3, 1)
    assert (rows[0.2]["tp"], rows[0.2]["fp"], rows[0.2]["fn"]) == (2, 1, 1)
    assert rows[0.5]["precision"] == 0.5 and rows[0.5]["recall"] == pytest.approx(1 / 3)
    assert progress.plot(list(rows.values()), tmp_path / "pr.png").stat().st_size > 1000


def test_another_owner_sees_no_source_and_no_corrections(review):
    from wildspace.review.sources import SourceNotFound

    service, owner, sid = review
    service.open(owner, S, sid, 0.2)
    service.act(owner, S, "accept", "Ann")
    assert service.sources.list(owner) and service.sources.list("mallory") == []
    with pytest.raises(SourceNotFound):
        service.open("mallory", S, sid, 0.2)
    with pytest.raises(SourceNotFound):
        service.open("mallory", S, "run:review/../review/run-test1", 0.2)
    assert service.stores.of("mallory").corrections(sid) == []
    assert len(service.stores.of(owner).corrections(sid)) == 3


def test_a_bad_upload_is_a_clear_error(tmp_path):
    from wildspace.formats.megadetector import FormatError
    from wildspace.review.sources import save_upload
    from wildspace.settings.limits import Limits

    bad = tmp_path / "x.json"
    bad.write_text('{"images": []}')
    with pytest.raises(FormatError, match="info"):
        save_upload(bad, [], tmp_path, "alice", Limits().upload_limits())
