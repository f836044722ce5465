"""Hand-checked metrics: classification, detection matching, re-ID kNN head, report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wildspace.evaluation.classification import classification_metrics, plot_confusion
from wildspace.evaluation.detection import Box, detection_metrics, iou, read_coco, read_yolo


def test_classification_metrics_by_hand(tmp_path):
    m = classification_metrics([0, 0, 0, 1, 2, 2], [0, 0, 1, 1, 2, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert m["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["confusion"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m["weighted"]["recall"] == pytest.approx(4 / 6)
    assert plot_confusion(m["confusion"], m["labels"], tmp_path / "cm.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="outside 0..2"):
        classification_metrics([0, 3], [0, 1], ["a", "b", "c"])


def test_detection_matching_by_hand():
    gt = [Box("a", "Grey Fox", (0.1, 0.1, 0.2, 0.2)), Box("a", "Grey Fox", (0.6, 0.6, 0.2, 0.2)),
          Box("b", "person", (0.1, 0.1, 0.2, 0.2))]
    preds = [Box("a", "animal", (0.1, 0.1, 0.2, 0.2), 0.9),     # TP
             Box("a", "animal", (0.11, 0.1, 0.2, 0.2), 0.8),    # duplicate of the same box: FP
             Box("a", "animal", (0.6, 0.6, 0.2, 0.2), 0.1),     # TP but below the threshold
             Box("b", "animal", (0.5, 0.5, 0.1, 0.1), 0.7),     # FP (the person box does not count)
             Box("c", "animal", (0.5, 0.5, 0.1, 0.1), 0.9)]     # image without ground truth: ignored
    m = detection_metrics(preds, gt, ["a", "b"], threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 2, 1)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 2)
    # over all confidences: TP(0.9), FP(0.8), FP(0.7), TP(0.1): AP = 0.5*1 + 0.5*0.5
    assert m["ap"] == pytest.approx(0.75)
    assert m["image_level"] == {"images_with_boxes": 1, "found": 1, "recall": 1.0, "false_alarm_images": 1}
    same = detection_metrics(preds, gt, ["a", "b"], threshold=0.5, classes="same")
    assert same["tp"] == 0  # 'animal' is not 'Grey Fox'
    assert iou((0, 0, 1, 1), (0.5, 0, 1, 1)) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="animal, any, same"):
        detection_metrics(preds, gt, ["a"], classes="species")
    with pytest.raises(ValueError, match="no prediction file name matches"):
        detection_metrics([Box("zzz", "animal", (0, 0, 1, 1), 1.0)], gt, ["a", "b"])


def test_ground_truth_readers(tmp_path):
    coco = tmp_path / "gt.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "x/IMG_1.JPG", "width": 200, "height": 100}],
                                "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [20, 10, 100, 50]}],
                                "categories": [{"id": 3, "name": "Grey Fox"}]}))
    keys, boxes = read_coco(coco)
    assert keys == ["IMG_1"] and boxes == [Box("IMG_1", "Grey Fox", (0.1, 0.1, 0.5, 0.5))]
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val" / "IMG_2.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    keys, boxes = read_yolo(tmp_path / "labels")
    assert keys == ["IMG_2"] and boxes[0].bbox == pytest.approx((0.4, 0.3, 0.2, 0.4))
    (tmp_path / "labels" / "val" / "bad.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(ValueError, match="bad.txt line 1"):
        read_yolo(tmp_path / "labels")


def test_detection_report_on_squirrels(shared_data, tmp_path):
    """The human YOLO boxes of squirrels-gt against a results file built from them: every box found."""
    from wildspace.runs.evaluation import evaluate_detection

    labels = shared_data / "camera-trap" / "squirrels-gt" / "data_example" / "labels"
    keys, gt = read_yolo(labels)
    doc = {"info": {"format_version": "1.5", "detector": "ground-truth-copy"}, "detection_categories": {"1": "animal"},
           "images": [{"file": f"{k}.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": list(b.bbox)}
                                                         for b in gt if b.image == k]} for k in keys]}
    m, paths = evaluate_detection(doc, labels, tmp_path / "rep")
    assert m["ground_truth_boxes"] == len(gt) > 0 and m["precision"] == 1.0 and m["recall"] == 1.0
    assert "precision 1.000, recall 1.000" in paths["markdown"].read_text()
    assert (tmp_path / "rep" / "precision_recall.png").is_file()


def test_knn_head_round_trip_and_pk_batches(tmp_path):
    import random

    from wildspace.train.reid import KnnHead, fit_knn_head, metric_loss, pk_batches, save_knn_head

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    ids = [f"id{i % 3}" for i in range(30)]
    x = np.stack([centres[i % 3] + rng.normal(size=16) * 0.3 for i in range(30)])
    head = fit_knn_head(x, ids)
    assert head["cv_accuracy"] == 1.0 and set(head["params"]) == {"n_components", "n_neighbors", "weights", "metric"}
    save_knn_head(head, tmp_path)
    loaded = KnnHead(tmp_path)
    assert list(loaded.predict(x[:6])) == ids[:6]
    assert not list(tmp_path.glob("*.pkl"))
    batches = pk_batches(ids, 2, 3, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(30))
    assert all(len({ids[i] for i in b}) == 2 for b in batches)
    import torch

    emb = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    y = torch.tensor([0, 0, 1, 1])
    assert float(metric_loss(emb, y, "triplet", "cosine", 0.1)) == 0.0  # already separated
    assert float(metric_loss(emb, torch.tensor([0, 1, 0, 1]), "triplet", "cosine", 0.1)) > 0.5
