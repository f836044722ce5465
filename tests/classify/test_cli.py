"""Classification from the command line, as users run it (subprocesses, real files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.classify.factories import SERENGETI, make_classifier_file
from tests.test_cli import run_cli
from wildspace.formats.megadetector import read_results

ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"


@pytest.fixture
def imported_classifier(tmp_path):
    weights = make_classifier_file(tmp_path / "serengeti-mini.safetensors", "timm", "test_resnet", len(SERENGETI))
    labels = tmp_path / "labels.txt"
    labels.write_text("# Serengeti subset\n" + "\n".join(SERENGETI) + "\n")
    r = run_cli("models", "import", weights, "--as", "my-species", "--labels", labels, "--arch", "test_resnet",
                "--input-size", 64)
    assert r.returncode == 0, r.stderr
    assert "imported" in r.stdout and "5 classes: wildebeest" in r.stdout
    return weights


def test_import_registers_a_classifier_spec(imported_classifier):
    r = run_cli("models", "list", "--json")
    row = next(x for x in json.loads(r.stdout) if x["name"] == "my-species")
    assert row["task"] == "classify" and row["family"] == "timm" and row["cached"]


@pytest.mark.slow
def test_detect_with_classifier_writes_md_classifications(imported_classifier, shared_data, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for name in (ZEBRA, ):
        (images / name).write_bytes((shared_data / "camera-trap" / "megadetector-test" / name).read_bytes())
    (images / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    out = tmp_path / "out.json"
    r = run_cli("detect", "--weights", shared_data / "weights" / "yolov5n.pt", "--image-size", 640,
                "--classifier", "my-species", "--classification-threshold", 0.3, "--classify-above", 0.25,
                "--output", out, images)
    assert r.returncode == 0, r.stderr
    doc = read_results(out)
    assert doc["classification_categories"] == {str(i): s for i, s in enumerate(SERENGETI)}
    assert doc["info"]["classifier"] == "my-species"
    assert doc["info"]["classifier_metadata"]["typical_classification_threshold"] == 0.3
    by = {im["file"]: im for im in doc["images"]}
    assert by["broken.jpg"]["detections"] is None
    zebras = by[ZEBRA]["detections"]
    assert zebras and all(("classifications" in d) == (d["conf"] >= 0.25) for d in zebras)
    assert all(len(d["classifications"]) == 3 for d in zebras if d["conf"] >= 0.25)


def test_unknown_classifier_is_one_error_line(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    r = run_cli("detect", "--model", "megadetector-v5a", "--classifier", "nope", "-o", tmp_path / "o.json",
                tmp_path / "a.png")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error:")


def test_import_with_the_wrong_arch_is_refused_before_anything_is_written(tmp_path):
    weights = make_classifier_file(tmp_path / "m.safetensors", "timm", "test_resnet", 3)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["a", "b", "c"]))
    r = run_cli("models", "import", weights, "--as", "bad-one", "--labels", labels, "--arch", "resnet18",
                "--family", "torchvision")
    assert r.returncode == 1 and "do not fit torchvision 'resnet18'" in r.stderr
    assert "bad-one" not in run_cli("models", "list").stdout
    r = run_cli("models", "import", weights, "--as", "no-labels", "--arch", "test_resnet")
    assert r.returncode == 1 and "--labels" in r.stderr


def test_feedback_export_from_the_cli(tmp_path):
    from datasets import load_from_disk

    from wildspace.classify.feedback import FeedbackStore
    from wildspace.settings import load_settings

    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "tusk.png")
    FeedbackStore(load_settings().home / "feedback").add(
        tmp_path / "tusk.png", "m", (("elephant_ivory", 0.9),), "wrong", "elephant_ambiguous_mammoth", "mammoth")
    r = run_cli("feedback", "export", "-o", tmp_path / "ds")
    assert r.returncode == 0, r.stderr
    ds = load_from_disk(str(tmp_path / "ds"))
    assert ds.features["label"].int2str(ds[0]["label"]) == "elephant_ambiguous_mammoth"
    assert "m\twrong\t1" in run_cli("feedback", "list").stdout
