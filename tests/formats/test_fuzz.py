"""Fuzzing every reader with hypothesis: random and mutated inputs may only raise the readers'
documented errors (FormatError, GalleryError, other ValueError subclasses), never crash."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wildspace.formats.megadetector import FormatError, read_results

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20)

MD_DOC = {"info": {"format_version": "1.4", "detector": "md.pt"},
          "detection_categories": {"1": "animal", "2": "person"},
          "images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9,
                                                       "bbox": [0.1, 0.1, 0.2, 0.2]}]},
                     {"file": "b.jpg", "failure": "truncated"}]}
COCO_DOC = {"info": {}, "images": [{"id": "a", "file_name": "a.jpg", "width": 10, "height": 10}],
            "categories": [{"id": 0, "name": "empty"}, {"id": 1, "name": "animal"}],
            "annotations": [{"id": "x", "image_id": "a", "category_id": 1, "bbox": [1, 1, 2, 2]}]}


def _mutate(doc, path: list, value):
    """``doc`` with the element at ``path`` (keys/indexes, followed as far as they go) replaced."""
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return doc


PATHS = st.lists(st.integers(0, 7), min_size=1, max_size=5)


def _as_file(tmp_path_factory, doc) -> Path:
    p = tmp_path_factory.mktemp("doc") / "doc.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


@FUZZ
@given(st.one_of(JSON, st.builds(_mutate, st.just(MD_DOC), PATHS, JSON)))
def test_megadetector_reader(tmp_path_factory, doc):
    from wildspace.formats.exports import result_set_from_md

    try:
        result_set_from_md(read_results(_as_file(tmp_path_factory, doc)))
    except FormatError:
        pass


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_megadetector_reader_on_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("md") / "r.json"
    p.write_bytes(data)
    try:
        read_results(p)
    except FormatError:
        pass


@FUZZ
@given(st.one_of(JSON, st.builds(_mutate, st.just(COCO_DOC), PATHS, JSON)))
def test_coco_reader(tmp_path_factory, doc):
    from wildspace.formats.coco_ct import coco_to_results, read_coco

    try:
        coco_to_results(read_coco(_as_file(tmp_path_factory, doc)))
    except FormatError:
        pass


CSV_CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@FUZZ
@given(st.lists(st.lists(CSV_CELL, max_size=5), max_size=6),
       st.sampled_from(["file,identity,viewpoint,bbox", "image,id,flank", "file,identity", ""]))
def test_identity_csv_reader(tmp_path_factory, rows, header):
    import csv

    from wildspace.reid.build import read_identity_table
    from wildspace.reid.gallery import GalleryError

    buf = io.StringIO()
    buf.write(header + "\n")
    csv.writer(buf).writerows(rows)
    p = tmp_path_factory.mktemp("csv") / "ids.csv"
    p.write_text(buf.getvalue(), encoding="utf-8")
    try:
        read_identity_table(p)
    except GalleryError:
        pass


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(JSON, st.builds(_mutate, st.just({"profile": "x", "resources": [
    {"name": "deployments", "path": "deployments.csv"}, {"name": "media", "path": "../../etc/passwd"}]}),
    PATHS, JSON)))
def test_camtrap_dp_validator(tmp_path_factory, descriptor):
    from wildspace.formats.camtrap_dp import validate_package

    d = tmp_path_factory.mktemp("dp")
    (d / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    problems = validate_package(d)
    assert isinstance(problems, list)


@FUZZ
@given(st.one_of(JSON, st.builds(_mutate, st.just({"format": "wildspace-gallery", "format_version": 1,
                                                   "name": "g", "count": 1, "calibrations": {}}),
                                 PATHS, JSON)),
       st.binary(max_size=64))
def test_gallery_reader(tmp_path_factory, manifest, junk):
    from wildspace.reid.gallery import GalleryError, open_gallery

    root = tmp_path_factory.mktemp("gallery")
    (root / "gallery.json").write_text(json.dumps(manifest))
    (root / "data").mkdir()
    (root / "data" / "state.json").write_bytes(junk)
    try:
        open_gallery(root)
    except GalleryError:
        pass


def _zip_bytes(names: list[str], payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in names:
            z.writestr(n or "x", payload)
    return buf.getvalue()


@FUZZ
@given(st.lists(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20),
                min_size=1, max_size=4), st.binary(max_size=64),
       st.integers(0, 400), st.binary(min_size=1, max_size=8))
@example(names=["0000\x80\x80\U00010000"], payload=bytes(13), cut=105, noise=b"\x00")  # an empty member name
def test_archive_reader(tmp_path_factory, names, payload, cut, noise):
    from wildspace.media.archives import unpack_uploads

    data = bytearray(_zip_bytes([n + ".jpg" for n in names], payload))
    at = cut % len(data)
    data[at:at + len(noise)] = noise  # corrupt a few bytes anywhere, headers included
    d = tmp_path_factory.mktemp("zip")
    (d / "up.zip").write_bytes(bytes(data))
    out = unpack_uploads([d / "up.zip"], d / "dest")
    for path, _ in out.files:
        assert (d / "dest") in Path(path).parents
