"""The Train tab's functions with a real queue (the worker step in process) and the CLI."""

from __future__ import annotations

import threading
import zipfile

import gradio as gr
import pytest

from wildspace.settings import load_settings


def test_train_tab_submit_status_and_products_registration(tmp_path, image_folder, monkeypatch):
    from wildspace.jobs.queue import JobQueue
    from wildspace.jobs.training import run_training
    from wildspace.services.classifiers import ClassifierService
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.train_tab import parse_label_map, submit_training, training_status

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(load_settings())
    classifiers = ClassifierService(load_settings())
    z = tmp_path / "photos.zip"
    with zipfile.ZipFile(z, "w") as f:
        for p in image_folder.rglob("*.png"):
            f.write(p, f"{p.parent.name}/{p.name}")
    assert parse_label_map("red=elephant_ivory,\n blue = non_wildlife") == {"red": "elephant_ivory", "blue": "non_wildlife"}
    with pytest.raises(ValueError, match="not OLD=NEW"):
        parse_label_map("red")
    with pytest.raises(gr.Error, match="zip of class folders"):
        submit_training(queue, "alice", None, None, "x", "resnet18", 1, "ce", 64, "species", "", False)
    with pytest.raises(gr.Error, match="loss 'mse'"):
        submit_training(queue, "alice", str(z), None, "x", "resnet18", 1, "mse", 64, "species", "", False)
    job = submit_training(queue, "alice", str(z), None, "Tab Products", "test_resnet", 1, "focal", 32,
                          "products", "red=elephant_ivory, blue=non_wildlife", False)
    assert "queued" in training_status(queue, classifiers, job, "alice")
    assert "No such" in training_status(queue, classifiers, job, "mallory")
    ctx = type("Ctx", (), {"service": DetectorService(load_settings()), "worker_id": "w", "stop": threading.Event()})()
    run_training(queue.store, job, ctx, lambda: True)  # what the worker does
    text = training_status(queue, classifiers, job, "alice")
    assert "model **tab-products** is ready in the Products tab" in text and "held-out accuracy" in text
    assert "tab-products" in classifiers.names("products")


def test_train_tab_is_in_the_app_with_a_queue(tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    demo = build_app(DetectorService(load_settings()), tmp_path / "out", queue=JobQueue(load_settings()))
    assert "train_classifier" in {d.api_name for d in demo.fns.values()}


def test_cli_train_then_evaluate(tmp_path, image_folder, capsys):
    from wildspace.cli import main

    rc = main(["train", "classifier", "--data", str(image_folder), "--name", "cli-colours", "--arch", "test_resnet",
               "--epochs", "2", "--batch-size", "4", "--input-size", "32", "--loss", "asymmetric-focal",
               "--output", str(tmp_path / "run")])
    out = capsys.readouterr()
    assert rc == 0 and "held-out test: accuracy" in out.out and "epoch 2/2" in out.err
    rc = main(["evaluate", "classifier", "--model", "cli-colours", "--data", str(image_folder),
               "--output", str(tmp_path / "eval")])
    assert rc == 0 and (tmp_path / "eval" / "confusion.png").is_file()
    assert main(["train", "classifier", "--data", str(tmp_path / "missing")]) == 1
    assert "training data not found" in capsys.readouterr().err
    assert main(["train", "classifier", "--data", str(image_folder), "--push-to-hub", "me/x"]) == 1


def test_push_to_hub_with_a_fake_api(tmp_path, image_folder):
    from tests.train.conftest import tiny_config
    from wildspace.hub.specs import load_spec_file
    from wildspace.train.export import ExportedModel, push_to_hub
    from wildspace.train.runs import run_classifier

    settings = load_settings()
    s = run_classifier(tiny_config(image_folder, tmp_path / "run", epochs=1, name="pushed"), settings)
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw["private"]))

        def upload_folder(self, repo_id, folder_path, **kw):
            calls.append(("upload", repo_id, sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())))
            return type("Info", (), {"oid": "a" * 40})()

    folder = tmp_path / "run" / "model"
    spec = load_spec_file(folder / "pushed.yaml")
    exported = ExportedModel(folder, spec, folder / spec.weights.filename)
    assert push_to_hub(exported, "me/pushed", "tok", settings=settings, api=FakeApi()) == "a" * 40
    assert calls[0] == ("create", "me/pushed", True)
    assert calls[1][2] == ["README.md", "metrics.json", "pushed.safetensors", "pushed.yaml"]
    pinned = load_spec_file(settings.user_specs_dir / "pushed.yaml")
    assert pinned.weights.hub.repo_id == "me/pushed" and pinned.weights.hub.revision == "a" * 40
    assert s["state"] == "done"
    with pytest.raises(ValueError, match="needs a token"):
        push_to_hub(exported, "me/pushed", None, api=FakeApi())
    with pytest.raises(ValueError, match="owner/name"):
        push_to_hub(exported, "pushed", "tok", api=FakeApi())


def test_train_tab_starting_weights_in_plain_words(tmp_path, image_folder, monkeypatch):
    from wildspace.jobs.queue import JobQueue
    from wildspace.train.reid import ReidConfig
    from wildspace.ui.train_tab import START_IMAGENET, START_RANDOM, submit_training

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(load_settings())
    args = (queue, "alice", None, str(image_folder), "w", "resnet18", 1, "ce", 64, "species", "", True)
    assert queue.store.spec(submit_training(*args)).options["config"]["init"] == "auto"
    assert queue.store.spec(submit_training(*args, START_IMAGENET)).options["config"]["init"] == "auto"
    assert queue.store.spec(submit_training(*args, START_RANDOM)).options["config"]["init"] == "none"
    assert ReidConfig(images="x", identities="y.csv", out_dir="").init == "auto"
