"""The command line, run as users run it (a subprocess), on real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import make_yolov5_checkpoint, seed_hub_cache, sha256, write_spec
from wildspace.formats.megadetector import read_results
from wildspace.media.images import IMAGE_EXTENSIONS

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wildspace", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def camera_trap_folder(shared_data, tmp_path):
    """The MegaDetector test images plus a zero-byte, a truncated and a non-image file."""
    src = shared_data / "camera-trap" / "megadetector-test"
    dst = tmp_path / "cards" / "site-A"
    shutil.copytree(src, dst)
    bad = dst / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    jpeg = next(src.glob("*.jpg")).read_bytes()
    (bad / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (bad / "notes.png").write_text("not an image")
    return dst


@pytest.mark.slow
def test_detect_with_real_yolov5n_writes_md_json_for_every_image(shared_data, camera_trap_folder, tmp_path):
    out = tmp_path / "out.json"
    r = run_cli("detect", "--weights", shared_data / "weights" / "yolov5n.pt", "--image-size", 640,
                "--output", out, camera_trap_folder)
    assert r.returncode == 0, r.stderr
    doc = read_results(out)
    expected = sorted(p.relative_to(camera_trap_folder).as_posix() for p in camera_trap_folder.rglob("*")
                      if p.suffix.lower() in IMAGE_EXTENSIONS)
    assert sorted(im["file"] for im in doc["images"]) == expected
    by = {im["file"]: im for im in doc["images"]}
    for name in ("bad/zero.jpg", "bad/truncated.jpg", "bad/notes.png"):
        assert by[name]["detections"] is None and by[name]["failure"]
    good = [im for im in doc["images"] if not im["file"].startswith("bad/")]
    assert len(good) == 16 and all(isinstance(im["detections"], list) for im in good)
    assert doc["detection_categories"]["1"] == "person"  # the checkpoint's own names
    zebra = by["snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"]["detections"]
    assert zebra[0]["category"] == "23" and zebra[0]["conf"] == pytest.approx(0.854, abs=0.002)


def test_detect_with_a_txt_list_and_a_named_model(tmp_path, specs_dir, hub_cache, shared_data):
    ckpt = make_yolov5_checkpoint(tmp_path / "md.pt", variant="n6")
    rev = seed_hub_cache(hub_cache, "org/md", "md.pt", ckpt)
    write_spec(specs_dir, "tiny-md", "yolov5-legacy", "md.pt", sha256(ckpt), input_size=320,
               hub={"repo_id": "org/md", "revision": rev, "path_in_repo": "md.pt"})
    img = next((shared_data / "camera-trap" / "ena24-small").glob("*.jpg"))
    lst = tmp_path / "list.txt"
    lst.write_text(f"{img}\nmissing.jpg\n")
    out = tmp_path / "o.json"
    r = run_cli("detect", "--model", "tiny-md", "--threshold", "0.2", "--output", out, lst)
    assert r.returncode == 0, r.stderr
    doc = read_results(out)
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert doc["info"]["detector_metadata"]["image_size"] == 320
    by = {im["file"]: im for im in doc["images"]}
    assert by["missing.jpg"]["failure"].startswith("cannot open file")


def test_missing_model_offline_is_one_clear_line(tmp_path):
    img = tmp_path / "x.jpg"
    img.write_bytes(b"")
    r = run_cli("detect", "--model", "megadetector-v5a", "--output", tmp_path / "o.json", img)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "python -m wildspace models import FILE --as megadetector-v5a" in r.stderr


@pytest.mark.parametrize("args, code, text", [
    (["detect", "--output", "o.json", "nowhere/"], 1, "input not found"),
    (["detect", "--threshold", "3", "--output", "o.json", "."], 2, "between 0 and 1"),
    (["detect", "--model", "no-such-model", "--output", "o.json", "."], 1, "known models"),
    (["detect", "x.jpg"], 2, "--output"),
])
def test_usage_errors(args, code, text, tmp_path):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == code
    assert text in r.stderr and "Traceback" not in r.stderr


def test_models_import_and_list(tmp_path, shared_data):
    r = run_cli("models", "import", shared_data / "weights" / "yolov5n.pt", "--as", "coco-yolov5n")
    assert r.returncode == 0, r.stderr
    assert "80 classes" in r.stdout
    listing = json.loads(run_cli("models", "list", "--json").stdout)
    row = next(x for x in listing if x["name"] == "coco-yolov5n")
    assert row["cached"] and row["family"] == "yolov5-legacy"
    assert any(x["name"] == "megadetector-v5a" and not x["cached"] for x in listing)
    evil_marker = tmp_path / "pwned"
    from tests.factories import make_malicious_checkpoint
    evil = make_malicious_checkpoint(tmp_path / "evil.pt", evil_marker)
    r = run_cli("models", "import", evil, "--as", "evil")
    assert r.returncode == 1 and "refused" in r.stderr and not evil_marker.exists()


def test_import_of_a_known_model_checks_its_hash(tmp_path):
    fake = tmp_path / "md_v5a.0.0.pt"
    fake.write_bytes(b"not the real weights")
    r = run_cli("models", "import", fake, "--as", "megadetector-v5a")
    assert r.returncode == 1 and "refusing" in r.stderr


def test_convert_md_json_into_every_format(shared_data, tmp_path):
    from wildspace.formats.camtrap_dp import validate_package
    from wildspace.formats.coco_ct import coco_to_results, read_coco
    from wildspace.formats.megadetector import parse_results

    folder = shared_data / "camera-trap" / "ena24-small"
    md = folder / "md_annotations.json"  # written by MegaDetector itself (format 1.4)
    r = run_cli("convert", md, "--images", folder, "--threshold", "0.2", "--output", tmp_path / "out",
                "--missing-times", "leave-out")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    for suffix in ("_detections.csv", "_images.csv", "_coco_camera_traps.json", "_camtrap_dp.zip",
                   "_crops.zip", "_sorted.zip"):
        assert (out / f"md_annotations{suffix}").is_file(), suffix
    assert validate_package(out / "md_annotations_camtrap_dp") == []
    coco_results, _ = coco_to_results(read_coco(out / "md_annotations_coco_camera_traps.json"))
    md_results = {x.file: x for x in parse_results(read_results(md))}
    for c in coco_results:
        kept = [d for d in md_results[c.file].detections if d.conf >= 0.2]
        assert len(c.detections) == len(kept)
    r = run_cli("convert", md, "--to", "crops", "--output", tmp_path / "o2")
    assert r.returncode == 1 and "needs the images" in r.stderr


def _md_errors(path) -> list[str]:
    from megadetector.postprocessing.validate_batch_results import validate_batch_results

    return validate_batch_results(str(path))["validation_results"]["errors"]


def test_detect_two_cards_with_the_same_names(tmp_path, model_files, shared_data):
    img = next((shared_data / "camera-trap" / "ena24-small").glob("*.jpg"))
    for card in ("cardA", "cardB"):
        (tmp_path / "cards" / card / "DCIM" / "100RECNX").mkdir(parents=True)
        shutil.copyfile(img, tmp_path / "cards" / card / "DCIM" / "100RECNX" / "IMG_0001.JPG")
    out = tmp_path / "o.json"
    r = run_cli("detect", "--weights", model_files["mdv5_p6"], "--image-size", 128, "--output", out,
                tmp_path / "cards" / "cardA", tmp_path / "cards" / "cardB")
    assert r.returncode == 0, r.stderr
    assert sorted(im["file"] for im in read_results(out)["images"]) == [
        "cardA/DCIM/100RECNX/IMG_0001.JPG", "cardB/DCIM/100RECNX/IMG_0001.JPG"]
    assert _md_errors(out) == [] and out.stat().st_mode & 0o777 == 0o644
    lst = tmp_path / "list.txt"  # two inputs that would still clash: refused before running
    lst.write_text("cards/cardA/DCIM/100RECNX/IMG_0001.JPG\n")
    r = run_cli("detect", "--weights", model_files["mdv5_p6"], "--output", tmp_path / "x.json", lst,
                tmp_path / "cards" / "cardA" / "DCIM" / "100RECNX" / "IMG_0001.JPG", tmp_path / "cards" / "cardA")
    assert r.returncode == 1 and "more than one input" in r.stderr and not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_detect_videos_writes_md_video_json_the_validator_accepts(tmp_path, model_files, shared_data):
    (tmp_path / "zero.mp4").write_bytes(b"")
    out = tmp_path / "v.json"
    r = run_cli("detect", "--weights", model_files["mdv5_p6"], "--image-size", 128, "--every-seconds", 10,
                "--threshold", 0.0001, "--output", out, shared_data / "video", tmp_path / "zero.mp4")
    assert r.returncode == 0, r.stderr
    assert _md_errors(out) == []
    doc = read_results(out)
    by = {im["file"]: im for im in doc["images"]}
    videos = sorted(p.name for p in (shared_data / "video").iterdir() if p.suffix.lower() in (".mp4", ".avi", ".asf"))
    assert set(by) == {f"video/{v}" for v in videos} | {"zero.mp4"}
    assert by["zero.mp4"]["frame_rate"] == -1.0 and by["zero.mp4"]["frames_processed"] == []
    assert by["zero.mp4"]["detections"] is None and str(tmp_path) not in by["zero.mp4"]["failure"]
    ok = [im for n, im in by.items() if n != "zero.mp4"]
    assert all(im["frame_rate"] > 0 and im["frames_processed"][0] == 0 for im in ok)
    assert all(d["frame_number"] in im["frames_processed"] for im in ok for d in im["detections"])
    convert = run_cli("convert", out, "--images", tmp_path, "--to", "camtrap-dp", "--output", tmp_path / "dp",
                      "--time-from-filename", "%Y-%m-%d", "--missing-times", "leave-out")
    assert convert.returncode == 0, convert.stderr
    from wildspace.formats.camtrap_dp import validate_package

    pkg = next(p for p in (tmp_path / "dp").iterdir() if p.is_dir())
    assert validate_package(pkg) == []


@pytest.mark.slow
def test_convert_ena24_gives_event_level_species_with_honest_times(shared_data, tmp_path):
    import csv

    from tests.formats.test_publishable import CAPTION_BARS
    from wildspace.formats.camtrap_dp import validate_package

    folder = shared_data / "camera-trap" / "ena24-small"
    md = folder / "md_annotations.json"
    assert _md_errors(md) == []
    r = run_cli("convert", md, "--images", folder, "--output", tmp_path / "refused")
    assert r.returncode == 1 and "no capture time" in r.stderr and "6039.jpg" in r.stderr
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    r = run_cli("convert", md, "--images", folder, "--to", "camtrap-dp", "--to", "coco", "--output",
                tmp_path / "out", "--missing-times", "leave-out", "--threshold", 0.2)
    assert r.returncode == 0, r.stderr
    pkg = tmp_path / "out" / "md_annotations_camtrap_dp"
    assert validate_package(pkg) == []
    media = list(csv.DictReader(open(pkg / "media.csv", encoding="utf-8")))
    assert len(media) >= 19
    for m in media:  # every time is EXIF or what the caption bar shows, and says which
        shown = CAPTION_BARS[f"ena24-small/{m['filePath']}"]
        assert m["timestamp"] == shown.isoformat() + "+00:00", m
        assert m["mediaComments"].split(";")[0] in ("time from: exif (DateTimeOriginal)",) or \
            m["mediaComments"].startswith("time from: caption-ocr")
    obs = list(csv.DictReader(open(pkg / "observations.csv", encoding="utf-8")))
    events = [o for o in obs if o["observationLevel"] == "event"]
    named = {o["scientificName"] for o in events if o["scientificName"]}
    assert {"Didelphis virginiana", "Sciurus niger", "Ursus americanus"} <= named
    assert all(o["classificationTimestamp"] == "2025-03-12T17:45:12+00:00" for o in obs if o["classificationTimestamp"])
    descriptor = json.loads((pkg / "datapackage.json").read_text())
    assert {t["scientificName"] for t in descriptor["taxonomic"]} == named
    assert "6039.jpg" in descriptor["description"]
    coco = json.loads((tmp_path / "out" / "md_annotations_coco_camera_traps.json").read_text())
    assert all(im["location"] == "deployment-1" for im in coco["images"])
    assert all(a["bbox"] for a in coco["annotations"] if a["category_id"])  # pixel boxes, sizes known


EXIT_CHILD = """
import atexit, sys, threading, time
from pathlib import Path
from wildspace.cli import exit_now

out = Path(sys.argv[1])
atexit.register(lambda: print("atexit ran"))
if sys.argv[2] == "thread":  # a non-daemon thread still working: the normal exit waits for it
    threading.Thread(target=lambda: (time.sleep(0.5), out.write_text("thread finished"))).start()
print("buffered output", end="; ")
exit_now(int(sys.argv[3]))
"""


@pytest.mark.parametrize("thread", ["none", "thread"])
def test_exit_now_keeps_the_exit_code_output_exit_handlers_and_threads(tmp_path, thread):
    marker = tmp_path / "marker.txt"
    r = subprocess.run([sys.executable, "-c", EXIT_CHILD, str(marker), thread, "3"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "buffered output; atexit ran\n"  # stdout is a pipe here: block-buffered
    assert marker.exists() == (thread == "thread")
