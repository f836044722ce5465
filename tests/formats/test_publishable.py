"""Results a scientist can publish: honest capture times (caption-bar OCR checked against what
the bars show), events and deployments, taxa, boxes, names that never clash, the official
Camtrap DP profile, and MegaDetector's own validator on every MD JSON we write."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from wildspace.formats import camtrap_dp
from wildspace.formats.events import DeploymentsError, assign, folder_deployment, group_events, read_deployments_csv
from wildspace.formats.exports import EXPORT_KINDS, DuplicateNamesError, ResultSet, write_exports
from wildspace.formats.megadetector import build_results
from wildspace.formats.taxonomy import parse_taxonomy, taxa_for
from wildspace.formats.timestamps import MissingTimesError, time_from_filename
from wildspace.media.caption_time import parse_caption_text, read_caption_time
from wildspace.types import Detection, ImageResult

LABELS = ("animal", "person", "vehicle")
T = dt.datetime

# What the caption bars show, read by eye from crops of the bars (seconds are 0 where the
# camera prints none; 12-hour clocks converted). Bushnell, Cuddeback, Covert and ScoutGuard
# print month first (mountain zebra's "04.01.2018" is 1 April: its EXIF agrees).
CAPTION_BARS = {
    "ena24-small/2480.jpg": T(2016, 5, 17, 21, 32, 34),  # Reconyx "2016-05-17 9:32:34 PM"
    "ena24-small/2573.jpg": T(2016, 5, 19, 23, 26, 41),
    "ena24-small/2595.jpg": T(2016, 6, 4, 23, 4, 15),
    "ena24-small/2968.jpg": T(2015, 3, 3, 6, 10, 52),  # Bushnell "03-03-2015 06:10:52"
    "ena24-small/2999.jpg": T(2015, 9, 9, 2, 42, 3),
    "ena24-small/3084.jpg": T(2015, 7, 17, 2, 53, 26),
    "ena24-small/352.jpg": T(2015, 6, 17, 6, 46, 13),
    "ena24-small/422.jpg": T(2016, 1, 27, 16, 27, 56),
    "ena24-small/4330.jpg": T(2015, 8, 27, 21, 3, 49),
    "ena24-small/4383.jpg": T(2015, 9, 8, 5, 55, 40),
    "ena24-small/4451.jpg": T(2015, 9, 22, 23, 45, 21),
    "ena24-small/49.jpg": T(2016, 3, 24, 10, 30, 12),
    "ena24-small/5840.jpg": T(2016, 6, 8, 17, 13, 32),
    "ena24-small/5899.jpg": T(2016, 5, 25, 8, 22, 38),
    "ena24-small/596.jpg": T(2015, 6, 30, 6, 20, 4),
    "ena24-small/6039.jpg": T(2016, 7, 9, 8, 17, 22),  # Reconyx, 24-hour "08:17:22"
    "ena24-small/7951.jpg": T(2015, 6, 30, 16, 13, 26),
    "ena24-small/8200.jpg": T(2016, 6, 2, 18, 55, 18),
    "ena24-small/8786.jpg": T(2015, 8, 17, 20, 5, 5),
    "ena24-small/8831.jpg": T(2015, 8, 23, 11, 53, 44),
    "ena24-small/9455.jpg": T(2015, 10, 18, 18, 16, 33),
    "megadetector-test/caltech_camera_traps_58a022a4-23d2-11e8-a6a3-ec086b02610b.jpg": T(2014, 5, 12, 11, 13, 52),
    "megadetector-test/channel_islands_camera_traps_loc-h500ee05127658_007_194.jpg": T(2012, 5, 6, 0, 45, 33),
    "megadetector-test/ena24_7904.jpg": T(2015, 6, 8, 18, 37, 3),
    "megadetector-test/idaho_camera_traps_loc_0062_loc_0062_im_004678.jpg": T(2016, 2, 3, 10, 45, 0),
    "megadetector-test/island_conservation_camera_traps_palau_cam10a_cam10a12122018_palau_cam10a12122018_20181108_174532_rcnx1035.jpg": T(2018, 11, 8, 17, 45, 32),
    "megadetector-test/missouri_camera_traps_Set1_1.63-European_Hare_SEQ76872_SEQ76872_IMG_0007.JPG": T(2011, 5, 6, 6, 27, 12),
    "megadetector-test/nacti_part1_sub198_FL-16_09_03_2015_FL-16_0089498.jpg": T(2015, 7, 30, 20, 19, 9),
    "megadetector-test/snapshot_camdeboo_CDB_S1_A05_A05_R2_CDB_S1_A05_R2_IMAG0084.JPG": T(2018, 10, 22, 5, 50),  # Cuddeback "10/22/2018 5:50 AM"
    "megadetector-test/snapshot_enonkishu_ENO_S1_D05_D05_R1_ENO_S1_D05_R1_IMAG1321.JPG": T(2018, 11, 8, 16, 18),
    "megadetector-test/snapshot_karoo_KAR_S1_E03_E03_R1_KAR_S1_E03_R1_IMAG0440.JPG": T(2018, 2, 4, 17, 41),
    "megadetector-test/snapshot_kgalagadi_KGA_S1_B06_B06_R1_KGA_S1_B06_R1_IMAG2032.JPG": T(2018, 12, 12, 11, 31),
    "megadetector-test/snapshot_kruger_KRU_S1_25_25_R1_KRU_S1_25_R1_IMAG0012.JPG": T(2018, 6, 18, 16, 21),
    "megadetector-test/snapshot_mountain_zebra_MTZ_S1_E05_E05_R3_MTZ_S1_E05_R3_IMAG1169.JPG": T(2018, 4, 1, 22, 51, 29),  # ScoutGuard "04.01.2018"
    "megadetector-test/snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG": T(2012, 12, 17, 12, 18, 38),  # Covert box
    "megadetector-test/wcs_camera_traps_animals_0245_1477.jpg": T(2011, 7, 6, 15, 40, 11),
    "megadetector-test/wellington_camera_traps_261215104310005bs372.JPG": T(2015, 12, 26, 10, 43, 11),
}


@pytest.mark.slow
def test_caption_bar_ocr_matches_what_the_bars_show(shared_data):
    read, wrong = 0, []
    for name, shown in CAPTION_BARS.items():
        got = read_caption_time(shared_data / "camera-trap" / name)
        if got is None:
            continue  # no time is allowed (the file then has none); a wrong time is not
        read += 1
        if got.time != shown:
            wrong.append((name, got.time, shown, got.text))
    assert wrong == []
    assert read >= len(CAPTION_BARS) - 3, f"only {read} of {len(CAPTION_BARS)} bars read"


@pytest.mark.parametrize("text, expected", [
    ("2016-05-17 9:32:34 PM M 4/5 68°F", T(2016, 5, 17, 21, 32, 34)),
    ("Bushnell Cam11 35F1C 03-03-2015 06:10:52", T(2015, 3, 3, 6, 10, 52)),
    ("10/22/2018 5:50 AM", T(2018, 10, 22, 5, 50)),
    ("12.17.2012 12:18:38", T(2012, 12, 17, 12, 18, 38)),
    ("25/12/2019 12:00 AM", T(2019, 12, 25, 0, 0)),  # first number > 12: day first
    ("2012-05-06 12:45:33 AM", T(2012, 5, 6, 0, 45, 33)),
    ("2016—07—09 08:17:22 M 4/5", T(2016, 7, 9, 8, 17, 22)),
])
def test_caption_formats(text, expected):
    got, has_seconds = parse_caption_text(text, now=T(2026, 1, 1))
    assert got == expected and has_seconds == (text.count(":") == 2)


@pytest.mark.parametrize("text", [
    "2031-05-17 9:32:34 PM",  # in the future
    "1990-05-17 9:32:34 PM",  # before camera traps wrote files
    "2016-13-17 9:32:34",  # month 13
    "2016-02-30 10:00:00",  # no such day
    "2016-05-17 13:32:34 PM",  # 13 PM
    "2016-05-17 25:10:00",
    "2016-07-09 08:17i322",  # a misread clock is no clock
    "NRC268 RECONYX",
])
def test_implausible_captions_give_no_time(text):
    assert parse_caption_text(text, now=T(2026, 1, 1)) is None


def test_day_first_option():
    assert parse_caption_text("04.01.2018 22:51:29", day_first=True, now=T(2026, 1, 1))[0] == T(2018, 1, 4, 22, 51, 29)


def test_time_from_filename():
    assert time_from_filename("cam1/RCNX_20210531_082538.JPG", "%Y%m%d_%H%M%S") == T(2021, 5, 31, 8, 25, 38)
    assert time_from_filename("20219999_000000/x.jpg", "%Y%m%d_%H%M%S") is None  # folders are not searched
    assert time_from_filename("IMG_0001.JPG", "%Y%m%d_%H%M%S") is None


def test_taxonomy_strings_become_scientific_names(shared_data):
    md = json.loads((shared_data / "camera-trap" / "ena24-small" / "md_annotations.json").read_text())
    taxa = taxa_for(md["classification_categories"], md["classification_category_descriptions"])
    names = {md["classification_categories"][k]: t.scientific_name for k, t in taxa.items()}
    assert names == {"virginia_opossum": "Didelphis virginiana", "eastern_fox_squirrel": "Sciurus niger",
                     "american_black_bear": "Ursus americanus", "american_crow": "Corvus brachyrhynchos",
                     "striped_skunk": "Mephitis mephitis", "chicken": "Gallus gallus",
                     "grey_fox": "Urocyon cinereoargenteus"}
    opossum = taxa["0"].as_taxonomic()
    assert opossum["taxonRank"] == "species" and opossum["family"] == "Didelphidae"
    assert opossum["vernacularNames"] == {"eng": "virginia opossum"}


def test_taxonomy_never_guesses_a_species():
    t = parse_taxonomy("animalia;chordata;mammalia;rodentia;muridae;rattusunknownus", "rat")
    assert (t.scientific_name, t.rank) == ("Muridae", "family")
    s = parse_taxonomy("5c7ce479-8a45-40b3-ae21-7c97dfae22f5;mammalia;carnivora;felidae;panthera;leo;lion")
    assert (s.scientific_name, s.vernacular) == ("Panthera leo", {"eng": "lion"})
    assert taxa_for({"0": "Equus quagga", "1": "zebra"}) .keys() == {"0"}


def test_events_split_at_the_gap_per_deployment():
    t0 = T(2024, 1, 1, 12, 0, 0)
    times = {"a/1.jpg": t0, "a/2.jpg": t0 + dt.timedelta(seconds=60), "a/3.jpg": t0 + dt.timedelta(seconds=121),
             "b/1.jpg": t0 + dt.timedelta(seconds=10)}
    deps = {f: folder_deployment(f) for f in times}
    events = group_events(times, deps, gap=60)
    assert [(e.deployment_id, e.files) for e in events] == [
        ("a", ("a/1.jpg", "a/2.jpg")), ("a", ("a/3.jpg",)), ("b", ("b/1.jpg",))]
    assert len(group_events(times, deps, gap=0)) == 4
    assert len({e.event_id for e in events}) == 3


def test_folder_deployments_skip_camera_folders():
    assert folder_deployment("cardA/DCIM/100RECNX/IMG_0001.JPG") == "cardA"
    assert folder_deployment("site1/camB/IMG_0001.JPG") == "site1/camB"
    assert folder_deployment("IMG_0001.JPG") == "deployment-1"


def test_deployments_csv(tmp_path):
    p = tmp_path / "deployments.csv"
    p.write_text("deploymentID,folder,filePattern,latitude,longitude,cameraID,deploymentStart,deploymentEnd,utcOffset\n"
                 "north,cardA,,51.5,-0.12,RC-1,2024-05-01T08:00:00,2024-06-01T08:00:00,+01:00\n"
                 "flat,,NRC*.jpg,10,20,,,,-05:00\n", encoding="utf-8")
    deps = read_deployments_csv(p)
    assert deps[0].latitude == 51.5 and deps[0].camera_id == "RC-1" and deps[0].utc_offset == "+01:00"
    assert assign("cardA/x/IMG_1.JPG", deps) == "north" and assign("NRC1.jpg", deps) == "flat"
    assert assign("other/IMG_1.JPG", deps) == "other"
    p.write_text("deploymentID,latitude\nx,95\n", encoding="utf-8")
    with pytest.raises(DeploymentsError, match="line 2: latitude"):
        read_deployments_csv(p)
    p.write_text("deploymentID,utcOffset\nx,Mars\n", encoding="utf-8")
    with pytest.raises(DeploymentsError, match="UTC offset"):
        read_deployments_csv(p)


def _image(path: Path, when: str | None = "2024:05:06 07:08:09", size=(400, 300)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if when:
        exif[0x8769] = {0x9003: when}
    Image.new("RGB", size, (90, 120, 60)).save(path, exif=exif)
    return path


def test_boxes_never_zero_and_never_moved(tmp_path):
    files = {"cam/a.jpg": _image(tmp_path / "cam" / "a.jpg")}
    rs = ResultSet([ImageResult("cam/a.jpg", (Detection(0, 0.9, (-0.1, 0.2, 0.3, 0.00002)),
                                              Detection(0, 0.8, (0.5, 0.5, 0.6, 0.1))))],
                   LABELS, "md.pt", {}, files)
    out = camtrap_dp.write_package(rs, tmp_path / "pkg", 0.2)
    assert camtrap_dp.validate_package(out) == []
    obs = [o for o in csv.DictReader(open(out / "observations.csv")) if o["observationLevel"] == "media"]
    first, second = sorted(obs, key=lambda o: -float(o["classificationProbability"]))
    assert (first["bboxX"], first["bboxWidth"]) == ("0.0000", "0.2000")  # right edge stays at 0.2
    assert float(first["bboxHeight"]) == pytest.approx(0.00002) and first["bboxHeight"] != "0.0000"
    assert (second["bboxX"], second["bboxWidth"]) == ("0.5000", "0.5000")  # cut at the image edge


def test_every_container_is_a_camtrap_media_type():
    from wildspace.media.archives import VIDEO_EXTENSIONS
    from wildspace.media.images import IMAGE_EXTENSIONS

    pattern = re.compile(r"^(image|video|audio)/.*$")
    for ext in sorted(VIDEO_EXTENSIONS | IMAGE_EXTENSIONS):
        kind = camtrap_dp.media_type(f"x/CLIP{ext.upper()}")
        assert pattern.match(kind), (ext, kind)
    assert camtrap_dp.media_type("PICT0021.ASF") == "video/x-ms-asf"


def test_bundled_schemas_are_the_cited_files():
    root = Path(camtrap_dp.__file__).parent / "schemas"
    table = (root / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\S+)[^|]*\| (\S+) \|.*\| ([0-9a-f]{64}) \|$", table, re.MULTILINE)
    assert len(rows) == 7
    for _url, rel, digest in rows:
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest, rel
    profile = json.loads((root / "camtrap-dp" / "1.0.2" / "camtrap-dp-profile.json").read_text())
    assert profile["title"] == "Camera Trap Data Package"  # the official one, not a rewrite
    for lic in ("camtrap-dp/1.0.2/LICENSE", "frictionless-specs/LICENSE.md", "schemastore/LICENSE",
                "geojson-org/license.md"):
        assert (root / lic).stat().st_size > 500


def test_official_profile_rejects_what_a_rewrite_let_through(tmp_path):
    files = {"cam/a.jpg": _image(tmp_path / "cam" / "a.jpg")}
    rs = ResultSet([ImageResult("cam/a.jpg", ())], LABELS, "md.pt", {}, files)
    out = camtrap_dp.write_package(rs, tmp_path / "pkg", 0.2)
    assert camtrap_dp.validate_package(out) == []
    d = json.loads((out / "datapackage.json").read_text())
    for mutate in (lambda x: x.update(spatial={"type": "Point", "coordinates": "here"}),  # GeoJSON
                   lambda x: x["resources"][0].update(schema="https://example.org/x.json"),  # a 1.0.2 schema URL
                   lambda x: x.update(name="Not A Name")):  # Data Package name pattern
        bad = json.loads(json.dumps(d))
        mutate(bad)
        (out / "datapackage.json").write_text(json.dumps(bad))
        assert camtrap_dp.validate_package(out) != []


def _md_errors(doc: dict) -> list[str]:
    from megadetector.postprocessing.validate_batch_results import validate_batch_results

    return validate_batch_results(json.loads(json.dumps(doc)))["validation_results"]["errors"]


def test_megadetector_validator_accepts_every_kind_of_document_we_write():
    images = [ImageResult("a/x.jpg", (Detection(0, 1.0, (0.1, 0.2, 0.3, 0.4)),)), ImageResult("a/empty.jpg", ()),
              ImageResult("a/bad.jpg", None, failure="corrupt")]
    assert _md_errors(build_results(images, LABELS, "md_v5a.0.0.pt")) == []
    videos = [ImageResult("v/clip.mp4", (Detection(0, 0.9, (0.1, 0.1, 0.2, 0.2), frame_number=30),),
                          frame_rate=30.0, frames_processed=(0, 30)),
              ImageResult("v/zero.mp4", None, failure="cannot open video"),
              ImageResult("v/PICT0021.ASF", None, failure="cannot open video"),
              ImageResult("v/empty.avi", (), frame_rate=25.0, frames_processed=(0,))]
    doc = build_results(videos, LABELS, "md_v5a.0.0.pt")
    assert _md_errors(doc) == []
    zero = next(im for im in doc["images"] if im["file"] == "v/zero.mp4")
    assert zero["frame_rate"] == -1.0 and zero["frames_processed"] == [] and zero["detections"] is None
    classified = [ImageResult("c/z.jpg", (Detection(0, 0.9, (0.1, 0.2, 0.3, 0.4), classifications=(("1", 0.8),)),))]
    doc = build_results(classified, LABELS, "md.pt", classification_categories={"0": "x", "1": "zebra"},
                        classifier="clf", classification_descriptions={"1": "animalia;chordata;mammalia;perissodactyla;equidae;equus;quagga"})
    assert _md_errors(doc) == []


def _two_cards(tmp_path) -> ResultSet:
    files = {"cardA/IMG_0001.JPG": _image(tmp_path / "cardA" / "IMG_0001.JPG", "2024:05:06 07:08:09"),
             "cardB/IMG_0001.JPG": _image(tmp_path / "cardB" / "IMG_0001.JPG", "2024:06:07 10:00:00")}
    det = Detection(0, 0.9, (0.1, 0.2, 0.3, 0.4))
    return ResultSet([ImageResult(n, (det,), width=400, height=300) for n in files], LABELS, "md.pt",
                     {"model_name": "megadetector-v5a"}, files)


def test_two_cards_with_the_same_file_names_stay_apart_in_every_export(tmp_path):
    paths = write_exports(_two_cards(tmp_path), tmp_path / "out", 0.2)
    assert set(paths) == set(EXPORT_KINDS)
    names = {"cardA/IMG_0001.JPG", "cardB/IMG_0001.JPG"}
    md = json.loads(paths["md-json"].read_text())
    assert {im["file"] for im in md["images"]} == names and _md_errors(md) == []
    assert {r["file"] for r in csv.DictReader(open(paths["csv"]))} == names
    coco = json.loads(paths["coco"].read_text())
    assert {im["id"] for im in coco["images"]} == names
    assert {im["location"] for im in coco["images"]} == {"cardA", "cardB"}
    pkg = tmp_path / "out" / "wildspace_camtrap_dp"
    assert camtrap_dp.validate_package(pkg) == []
    media = list(csv.DictReader(open(pkg / "media.csv")))
    assert {m["filePath"] for m in media} == names and len({m["mediaID"] for m in media}) == 2
    assert {d["deploymentID"] for d in csv.DictReader(open(pkg / "deployments.csv"))} == {"cardA", "cardB"}
    for kind in ("crops", "sorted"):
        with zipfile.ZipFile(paths[kind]) as z:
            assert {n.split("/", 1)[1].rsplit("_0_", 1)[0].replace(".JPG", "") for n in z.namelist()} == {
                "cardA/IMG_0001", "cardB/IMG_0001"}
    for p in (tmp_path / "out").rglob("*"):  # world-readable like any user file, no server path inside
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p
        if p.is_file() and p.suffix in (".json", ".csv"):
            assert str(tmp_path) not in p.read_text(encoding="utf-8"), p


def test_duplicate_names_and_missing_times_write_nothing(tmp_path):
    rs = _two_cards(tmp_path)
    dup = ResultSet([*rs.results, ImageResult("cardA/IMG_0001.JPG", ())], LABELS, "md.pt", {}, rs.files)
    with pytest.raises(DuplicateNamesError, match="cardA/IMG_0001.JPG"):
        write_exports(dup, tmp_path / "out", 0.2)
    assert not (tmp_path / "out").exists()
    files = {**rs.files, "cardC/IMG_0002.JPG": _image(tmp_path / "cardC" / "IMG_0002.JPG", None)}
    no_time = ResultSet([*rs.results, ImageResult("cardC/IMG_0002.JPG", ())], LABELS, "md.pt", {}, files)
    with pytest.raises(MissingTimesError, match="cardC/IMG_0002.JPG"):
        write_exports(no_time, tmp_path / "out2", 0.2, package=camtrap_dp.PackageOptions(missing_times="refuse"))
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
    paths = write_exports(no_time, tmp_path / "out3", 0.2, ["camtrap-dp"])  # the app's default: left out, said
    descriptor = json.loads((tmp_path / "out3" / "wildspace_camtrap_dp" / "datapackage.json").read_text())
    assert "cardC/IMG_0002.JPG" in descriptor["description"] and paths["camtrap-dp"].is_file()


def test_classified_results_become_species_and_event_observations(tmp_path):
    files = {f"cam/{i}.jpg": _image(tmp_path / "cam" / f"{i}.jpg", f"2024:05:06 07:08:{10 + i:02d}") for i in range(3)}
    zebra = Detection(0, 0.9, (0.1, 0.2, 0.3, 0.4), classifications=(("1", 0.8),))
    unsure = Detection(0, 0.85, (0.5, 0.5, 0.2, 0.2), classifications=(("1", 0.3),))
    results = [ImageResult("cam/0.jpg", (zebra,)), ImageResult("cam/1.jpg", (zebra, zebra, unsure)),
               ImageResult("cam/2.jpg", ())]
    rs = ResultSet(results, LABELS, "md.pt", {}, files, classification_categories={"0": "lion", "1": "plains_zebra"},
                   classifier="clf", classifier_metadata={"typical_classification_threshold": 0.5},
                   classification_descriptions={"1": "animalia;chordata;mammalia;perissodactyla;equidae;equusquagga"},
                   completed="2025-03-12 17:45:10", classification_completed="2025-03-12 17:45:12")
    out = camtrap_dp.write_package(rs, tmp_path / "pkg", 0.2)
    assert camtrap_dp.validate_package(out) == []
    rows = list(csv.DictReader(open(out / "observations.csv")))
    events = [o for o in rows if o["observationLevel"] == "event"]
    assert len({o["eventID"] for o in rows}) == 1  # 3 frames within a minute: one event
    z = next(o for o in events if o["scientificName"] == "Equus quagga")
    assert z["count"] == "2" and z["eventStart"] == "2024-05-06T07:08:10+00:00" and z["eventEnd"].endswith("07:08:12+00:00")
    assert any(o["observationType"] == "animal" and not o["scientificName"] for o in events)  # the unsure box
    assert {o["classificationTimestamp"] for o in rows} == {"2025-03-12T17:45:12+00:00"}
    d = json.loads((out / "datapackage.json").read_text())
    assert d["taxonomic"] == [{"scientificName": "Equus quagga", "taxonRank": "species", "kingdom": "Animalia",
                               "phylum": "Chordata", "class": "Mammalia", "order": "Perissodactyla",
                               "family": "Equidae", "genus": "Equus", "vernacularNames": {"eng": "plains zebra"}}]
    assert d["project"]["observationLevel"] == ["media", "event"]
    media = list(csv.DictReader(open(out / "media.csv")))
    assert all(m["mediaComments"].startswith("time from: exif") for m in media)
