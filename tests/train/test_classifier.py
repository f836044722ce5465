"""Training loop, checkpoints and resume, export and loading through the production path."""

from __future__ import annotations

import numpy as np
import pytest

from tests.train.conftest import tiny_config
from wildspace.train.classifier import BEST, CHECKPOINT, Hooks, train_classifier


def _weights(out):
    from wildspace.classify.weights import read_tensors

    return read_tensors(out / BEST)


def test_train_checkpoints_every_epoch_and_reports_test_metrics(image_folder, tmp_path):
    logs = []
    o = train_classifier(tiny_config(image_folder, tmp_path / "run"), Hooks(on_epoch=logs.append))
    assert o.state == "done" and o.epochs_done == 3 and [entry["epoch"] for entry in logs] == [1, 2, 3]
    assert all("val_loss" in entry and entry["epochs"] == 3 for entry in logs)
    assert (tmp_path / "run" / CHECKPOINT).is_file() and (tmp_path / "run" / BEST).is_file()
    assert o.test["samples"] == 4 and set(o.test["per_class"]) == {"blue", "red"}
    assert o.counts == {"train": 14, "val": 2, "test": 4}  # stratified: 2 + 1 per class


def test_resume_after_a_stop_ends_with_the_same_weights(image_folder, tmp_path):
    train_classifier(tiny_config(image_folder, tmp_path / "straight"))
    epochs = []

    def on_epoch(log):
        epochs.append(log["epoch"])

    stop = {"after": 2}
    hooks = Hooks(on_epoch=on_epoch, tick=lambda: len(epochs) >= stop["after"])
    first = train_classifier(tiny_config(image_folder, tmp_path / "resumed"), hooks)
    assert first.state == "stopped" and first.epochs_done == 2  # the third epoch was dropped
    stop["after"] = 99
    second = train_classifier(tiny_config(image_folder, tmp_path / "resumed"), hooks)
    assert second.state == "done" and epochs == [1, 2, 3]  # continued at 3, not from zero
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_checkpoint_of_another_run_is_refused(image_folder, tmp_path):
    train_classifier(tiny_config(image_folder, tmp_path / "run", epochs=1))
    import json

    split = json.loads((tmp_path / "run" / "split.json").read_text())
    for s in split["samples"]:
        s["label"] = {"red": "rouge", "blue": "bleu"}[s["label"]]
    (tmp_path / "run" / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError, match="belongs to another run"):
        train_classifier(tiny_config(image_folder, tmp_path / "run", epochs=2))


def test_bad_settings_name_the_choices(image_folder, tmp_path):
    with pytest.raises(ValueError, match="ce, focal, asymmetric-focal"):
        train_classifier(tiny_config(image_folder, tmp_path / "r", loss="mse"))
    with pytest.raises(ValueError, match="sampler, weights, none"):
        train_classifier(tiny_config(image_folder, tmp_path / "r", balance="oversample"))
    with pytest.raises(ValueError, match="unknown timm architecture"):
        train_classifier(tiny_config(image_folder, tmp_path / "r", arch="resnet_999"))


def test_init_loads_matching_tensors_and_refuses_unrelated_files(image_folder, tmp_path):
    from tests.classify.factories import make_classifier_file

    src = make_classifier_file(tmp_path / "init.safetensors", "timm", "test_resnet", 7, seed=3)
    o = train_classifier(tiny_config(image_folder, tmp_path / "ok", epochs=1, init=str(src)))
    assert o.state == "done"
    other = make_classifier_file(tmp_path / "other.safetensors", "torchvision", "resnet18", 2)
    with pytest.raises(ValueError, match="tensors fit this architecture"):
        train_classifier(tiny_config(image_folder, tmp_path / "bad", epochs=1, init=str(other)))


def test_exported_products_model_loads_in_the_products_service(image_folder, tmp_path):
    from wildspace.media.images import load_image
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings
    from wildspace.train.runs import run_classifier

    settings = load_settings()
    config = tiny_config(image_folder, tmp_path / "run", name="colour-products", kind="products",
                         label_map={"red": "elephant_ivory", "blue": "non_wildlife"}, epochs=2)
    summary = run_classifier(config, settings, license="cc-by-4.0")
    assert summary["state"] == "done" and summary["model"] == "colour-products"
    folder = tmp_path / "run" / "model"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0") and "Held-out test metrics" in card and "accuracy" in card
    assert (tmp_path / "run" / "report" / "confusion.png").stat().st_size > 1000
    service = ClassifierService(load_settings())
    assert "colour-products" in service.names("products")
    clf = service.load("colour-products")
    assert clf.info.labels == ("elephant_ivory", "non_wildlife") and clf.info.input_size == 32
    img = load_image(next(image_folder.glob("red/*.png")))
    p = clf.predict([img])
    assert p.shape == (1, 2) and abs(p.sum() - 1) < 1e-5
    # a run resumed after it had installed its model (worker killed before the job's result):
    # the same weights again, no conflict
    again = run_classifier(config, settings, license="cc-by-4.0")
    assert again["model"] == "colour-products" and again["test"] == summary["test"]
    with pytest.raises(ValueError, match="exists already"):
        run_classifier(tiny_config(image_folder, tmp_path / "run2", name="colour-products", kind="products",
                                   label_map={"red": "elephant_ivory", "blue": "non_wildlife"}, epochs=1), settings)


def test_products_labels_must_come_from_the_taxonomy(image_folder, tmp_path):
    from wildspace.settings import load_settings
    from wildspace.train.runs import run_classifier

    with pytest.raises(ValueError, match="not in the product taxonomy"):
        run_classifier(tiny_config(image_folder, tmp_path / "run", kind="products", epochs=1), load_settings())
