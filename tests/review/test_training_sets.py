"""Training sets from a review: the class-folder zip trains in the Train tab's queue as it
is; identities and YOLO zips have the layout their readers expect."""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from wildspace.settings.limits import Limits


@pytest.fixture
def colours_review(tmp_path):
    """12 images, one box each: blue squares are 'zebra', red ones 'impala' (per the model)."""
    from wildspace.review.session import ReviewService
    from wildspace.review.sources import Sources, save_upload
    from wildspace.review.store import ReviewStores

    rng = np.random.default_rng(1)
    z = tmp_path / "images.zip"
    images = []
    with zipfile.ZipFile(z, "w") as f:
        for i in range(12):
            sp = i % 2
            img = rng.integers(100, 140, (96, 128, 3)).astype(np.uint8)
            img[20:80, 30:100] = (40, 40, 210) if sp == 0 else (210, 40, 40)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            f.writestr(f"img{i:02d}.png", buf.getvalue())
            images.append({"file": f"img{i:02d}.png", "detections": [
                {"category": "1", "conf": 0.9, "bbox": [30 / 128, 20 / 96, 70 / 128, 60 / 96],
                 "classifications": [[str(sp), 0.7]]}]})
    md = tmp_path / "md.json"
    md.write_text(json.dumps({"info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
                              "detection_categories": {"1": "animal"},
                              "classification_categories": {"0": "zebra", "1": "impala"}, "images": images}))
    root = tmp_path / "out" / "review"
    (root / "run-colours").mkdir(parents=True)
    save_upload(md, [z], root / "run-colours", "alice", Limits().upload_limits())
    service = ReviewService(Sources({"review": root}), ReviewStores(tmp_path / "home"), tmp_path / "views", 10**7)
    sid = "run:review/run-colours"
    service.open("alice", "s", sid, 0.2)
    for i in range(12):
        if i == 3:  # the model said impala; the reviewer says zebra... and then back: last one wins
            service.act("alice", "s", "species", "Ann", value="zebra")
            service.act("alice", "s", "species", "Ann", value="impala")
        service.act("alice", "s", "individual", "Ann", value=f"Z{i % 3}")
        service.act("alice", "s", "accept", "Ann")
    yield service.opened("alice", sid)
    service.stores.close()


def test_class_folder_zip_trains_a_classifier_through_the_train_tab(colours_review, tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue
    from wildspace.jobs.training import run_training
    from wildspace.review.exports import write_class_folders
    from wildspace.services.detectors import DetectorService
    from wildspace.settings import load_settings
    from wildspace.ui.train_tab import submit_training, training_status

    path, counts = write_class_folders(colours_review, tmp_path / "species.zip", 10**7)
    assert counts == {"zebra": 6, "impala": 6}
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert all(n.split("/")[0] in ("zebra", "impala") for n in names)
    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(load_settings())
    job = submit_training(queue, "alice", str(path), None, "reviewed-colours", "test_resnet", 1, "ce", 32,
                          "species", "", False)
    ctx = type("Ctx", (), {"service": DetectorService(load_settings()), "worker_id": "w",
                           "stop": threading.Event()})()
    run_training(queue.store, job, ctx, lambda: True)  # what the worker does
    text = training_status(queue, None, job, "alice")
    assert "model **reviewed-colours** is ready" in text and "held-out accuracy" in text


def test_identities_and_yolo_zips(colours_review, tmp_path):
    from wildspace.jobs.training import find_identity_table
    from wildspace.review.exports import write_identities, write_yolo

    path, counts = write_identities(colours_review, tmp_path / "ids.zip", 10**7)
    assert counts == {"Z0": 4, "Z1": 4, "Z2": 4}
    with zipfile.ZipFile(path) as z:
        table = find_identity_table(z.namelist())
        rows = list(csv.DictReader(io.StringIO(z.read(table).decode())))
        assert all(r["file"] in z.namelist() for r in rows)
    path, n = write_yolo(colours_review, tmp_path / "yolo.zip")
    assert n == 12
    with zipfile.ZipFile(path) as z:
        label = z.read("labels/img00.txt").decode().split()
        assert label[0] == "0" and [round(float(v), 3) for v in label[1:]] == [0.508, 0.521, 0.547, 0.625]
        assert "images/img00.png" in z.namelist() and "animal" in z.read("data.yaml").decode()


def test_coco_boxes_load_in_pycocotools_and_convert_to_the_yolo_labels(colours_review, review, tmp_path):
    """COCO instances for detector fine-tuning: integer ids, absolute pixel boxes; the reference
    COCO API reads them, and ultralytics' COCO converter (the way into its YOLO trainer) gives back
    the YOLO export's labels. Empty and misfire images are negatives (no annotations)."""
    from wildspace.review.exports import COCO_JSON, write_coco_boxes, write_yolo

    pycocotools_coco = pytest.importorskip("pycocotools.coco")
    path, n = write_coco_boxes(colours_review, tmp_path / "coco.zip")
    assert n == 12
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp_path / "coco")
        names = z.namelist()
    assert sorted(names) == sorted([COCO_JSON, *(f"images/img{i:02d}.png" for i in range(12))])
    coco = pycocotools_coco.COCO(str(tmp_path / "coco" / COCO_JSON))
    assert len(coco.getImgIds()) == 12 and len(coco.getAnnIds()) == 12
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["animal"]
    (im,) = [i for i in coco.loadImgs(coco.getImgIds()) if i["file_name"] == "img00.png"]
    assert (im["width"], im["height"]) == (128, 96) and (tmp_path / "coco" / "images" / im["file_name"]).is_file()
    (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]]))
    assert ann["bbox"] == [30.0, 20.0, 70.0, 60.0] and ann["area"] == 4200.0 and ann["category_id"] == 1

    from ultralytics.data.converter import convert_coco

    convert_coco(str(tmp_path / "coco" / "annotations"), str(tmp_path / "converted"), cls91to80=False)
    yolo, _ = write_yolo(colours_review, tmp_path / "yolo.zip")
    with zipfile.ZipFile(yolo) as z:
        for i in range(12):
            ours = [float(v) for v in z.read(f"labels/img{i:02d}.txt").decode().split()]
            theirs = [float(v) for v in (tmp_path / "converted" / "labels" / "train" / f"img{i:02d}.txt")
                      .read_text().split()]
            assert theirs == pytest.approx(ours, abs=1e-4)

    service, owner, sid = review  # an empty image: a negative, no annotation
    service.open(owner, "s", sid, 0.2)
    service.act(owner, "s", "empty", "Ann")
    service.act(owner, "s", "accept", "Ann")
    path, n = write_coco_boxes(service.opened(owner, sid), tmp_path / "mixed.zip")
    with zipfile.ZipFile(path) as z:
        doc = json.loads(z.read(COCO_JSON))
    assert n == 2 and [im["original_file"] for im in doc["images"]] == ["cam1/a.jpg", "cam1/b.jpg"]
    per_image = {im["original_file"]: sum(a["image_id"] == im["id"] for a in doc["annotations"])
                 for im in doc["images"]}
    assert per_image == {"cam1/a.jpg": 0, "cam1/b.jpg": 2}  # a: empty; b: its 2 boxes at 0.2 accepted
    assert [c["name"] for c in doc["categories"]] == ["animal", "person", "vehicle"]


def test_one_species_is_not_a_training_set(review, tmp_path):
    from wildspace.review.exports import write_class_folders

    service, owner, sid = review
    service.open(owner, "s", sid, 0.2)
    service.act(owner, "s", "accept", "Ann")  # only zebra accepted
    with pytest.raises(ValueError, match="at least two species"):
        write_class_folders(service.opened(owner, sid), tmp_path / "x.zip", 10**7)
    assert not (tmp_path / "x.zip").exists()
