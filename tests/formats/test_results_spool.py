"""The CLI's MegaDetector output is written from a spool on disk (memory stays flat over long
runs): byte for byte what build_results + write_results write for the same results, readable
by MegaDetector's own validator, and a bad entry is refused when it is added."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from wildspace.errors import WildspaceError
from wildspace.formats.megadetector import ResultsSpool, build_results, read_results, write_results
from wildspace.types import Detection, ImageResult

LABELS = ("animal", "person", "vehicle")
WHEN = dt.datetime(2026, 12, 2, 10, 0, 0)


def _results(classified: bool = True):
    box = Detection(0, 0.91234, (0.1, 0.2, 0.3, 0.4),
                    classifications=(("1", 0.8), ("0", 0.1)) if classified else ())
    return [
        ImageResult("b/IMG_0002.JPG", (box, Detection(1, 0.0051, (0.0, 0.0, 1.0, 1.0))), width=640, height=480),
        ImageResult("a/IMG_0001.JPG", (), width=640, height=480),
        ImageResult("c/broken.jpg", None, failure="not an image"),
        ImageResult("clips/v.mp4", None, failure="cannot decode", frame_rate=-1.0, frames_processed=()),
        ImageResult("a/ünïcode name.jpg", (box,), width=10, height=10),
    ]


@pytest.mark.parametrize("classified", [False, True])
def test_the_spool_writes_what_the_whole_document_writer_writes(tmp_path, classified):
    cats = {"0": "zebra", "1": "lion"} if classified else None
    results = _results(classified)
    extra = {"classification_categories": cats, "classifier": "species-x"} if classified else {}
    doc = build_results(results, LABELS, "md_v5a.0.0.pt", {"typical_detection_threshold": 0.2},
                        completed=WHEN, **extra)
    write_results(doc, tmp_path / "whole.json")
    spool = ResultsSpool(LABELS, cats)
    for r in results:
        spool.add(r)
    header = build_results([], LABELS, "md_v5a.0.0.pt", {"typical_detection_threshold": 0.2}, completed=WHEN,
                           **extra)
    spool.write(header, tmp_path / "spooled.json")
    spool.close()
    assert (tmp_path / "spooled.json").read_bytes() == (tmp_path / "whole.json").read_bytes()
    assert [im["file"] for im in read_results(tmp_path / "spooled.json")["images"]] == sorted(r.file for r in results)
    assert len(spool) == len(results) and spool.failed == 2 and spool.detections == 3
    assert spool.detections == sum(len(r.detections or ()) for r in results)
    assert (tmp_path / "spooled.json").stat().st_mode & 0o777 == 0o644


def test_an_empty_run_and_megadetectors_validator(tmp_path):
    spool = ResultsSpool(LABELS)
    spool.write(build_results([], LABELS, "x.pt", completed=WHEN), tmp_path / "empty.json")
    assert json.loads((tmp_path / "empty.json").read_text())["images"] == []
    spool = ResultsSpool(LABELS)
    for r in _results(classified=False):
        spool.add(r)
    spool.write(build_results([], LABELS, "x.pt", completed=WHEN), tmp_path / "run.json")
    from megadetector.postprocessing.validate_batch_results import validate_batch_results

    report = validate_batch_results(json.loads((tmp_path / "run.json").read_text()))["validation_results"]
    assert not report["errors"], report


def test_a_bad_entry_is_refused_when_added():
    spool = ResultsSpool(LABELS)  # no classification categories: a classified box is invalid
    with pytest.raises(WildspaceError):
        spool.add(_results()[0])
    assert len(spool) == 0
