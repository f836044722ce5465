"""Re-ID embedder training as a queued job: a zip with identities.csv (or a folder + CSV),
progress per epoch, clear failures for bad data, cancel, resume after SIGKILL, and the
Train tab's ``train_reid`` through the API of a launched app."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.train.conftest import TINY_ARCH, kill_and_resume
from wildspace.jobs.store import KINDS, JobStore
from wildspace.jobs.training import REID_KIND, TRAIN_KINDS, reid_training_spec, run_training
from wildspace.settings import load_settings

COLOURS = [(200, 40, 40), (40, 40, 200), (40, 200, 40), (200, 200, 40)]


def _service():
    from wildspace.services.detectors import DetectorService

    return DetectorService(load_settings())


@dataclass
class _Ctx:
    service: object = field(default_factory=_service)
    worker_id: str = "test-worker"
    stop: threading.Event = field(default_factory=threading.Event)


def make_identity_set(root: Path, identities: int = 3, per_identity: int = 4, seed: int = 0) -> Path:
    """``root/identities.csv`` naming ``photos/<id>_<n>.png`` (48 px, one colour per animal)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    rows = ["file,identity"]
    for ident in range(identities):
        for n in range(per_identity):
            img = np.clip(np.array(COLOURS[ident], float) + rng.normal(0, 25, (48, 48, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / "photos" / f"{ident}_{n}.png")
            rows.append(f"photos/{ident}_{n}.png,animal{ident}")
    (root / "identities.csv").write_text("\n".join(rows) + "\n")
    return root / "identities.csv"


def zip_folder(folder: Path, z: Path, prefix: str = "", skip: str | None = None) -> Path:
    with zipfile.ZipFile(z, "w") as f:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.name != skip:
                f.write(p, prefix + p.relative_to(folder).as_posix())
    return z


def reid_config(name: str, epochs: int = 2, **kw):
    from wildspace.train.reid import ReidConfig

    base = dict(images="", identities="", out_dir="", name=name, backbone=TINY_ARCH, epochs=epochs,
                input_size=32, identities_per_batch=3, images_per_identity=2, lr=1e-3)
    base.update(kw)
    return ReidConfig(**base)


def test_reid_job_runs_in_process_with_progress_and_installs_the_embedder(tmp_path):
    from wildspace.hub.specs import load_spec_file
    from wildspace.reid.embedders import load_embedder

    make_identity_set(tmp_path / "set")
    z = zip_folder(tmp_path / "set", tmp_path / "animals.zip", prefix="my-set/")  # CSV one folder down
    store = JobStore(tmp_path / "storage")
    spec = store.create(reid_training_spec("alice", str(z), reid_config("tiny-stripes")))
    assert spec.kind == REID_KIND and store.status(spec.id, "alice").state == "queued"
    assert set(TRAIN_KINDS) == {k for k in KINDS if k.startswith("train-")}
    result = run_training(store, spec.id, _Ctx(), renew=lambda: True)
    assert result["state"] == "done" and result["model"] == "tiny-stripes" and result["epochs_done"] == 2
    assert result["test"]["queries"] == 3 and 0 <= result["test"]["top1"] <= 1 and "mAP" in result["test"]
    assert result["knn"]["params"]["n_neighbors"] >= 1
    assert json.loads((tmp_path / "storage" / "jobs" / spec.id / "result.json").read_text()) == result
    s = store.status(spec.id, "alice")
    assert (s.state, s.done, s.total, s.model) == ("done", 2, 2, "tiny-stripes")
    progress = store.progress(spec.id)
    assert progress["epoch"] == 2 and progress["loss"] >= 0
    installed = load_spec_file(load_settings().user_specs_dir / "tiny-stripes.yaml")
    assert installed.task == "embed"
    assert load_embedder("tiny-stripes").embed([np.zeros((32, 32, 3), np.uint8)]).shape[0] == 1


def test_reid_job_bad_data_fails_with_a_reason_and_cancel_stops_it(tmp_path):
    store = JobStore(tmp_path / "storage")
    csv = make_identity_set(tmp_path / "set")

    def run(data, name, **kw) -> tuple[dict | None, str]:
        spec = store.create(reid_training_spec("bob", str(data), reid_config(name), **kw))
        return run_training(store, spec.id, _Ctx(), lambda: True), spec.id

    result, job = run(zip_folder(tmp_path / "set", tmp_path / "no-csv.zip", skip="identities.csv"), "a")
    assert result["state"] == "failed" and "no identities.csv" in result["error"]
    assert store.status(job, "bob").state == "failed"
    deep = zip_folder(tmp_path / "set", tmp_path / "deep.zip", prefix="a/b/")
    assert "no identities.csv" in run(deep, "b")[0]["error"]  # two folders down is not looked at
    (tmp_path / "broken.zip").write_bytes(b"not a zip at all")
    assert "not a readable zip" in run(tmp_path / "broken.zip", "c")[0]["error"]

    text = csv.read_text()
    csv.write_text(text + "photos/missing.png,animal0\n")
    result = run(zip_folder(tmp_path / "set", tmp_path / "missing.zip"), "d")[0]
    assert "1 file(s) not found" in result["error"] and "photos/missing.png" in result["error"]
    csv.write_text(text + "../outside.png,animal0\n")
    assert "outside" in run(zip_folder(tmp_path / "set", tmp_path / "out.zip"), "e")[0]["error"]
    csv.write_text("\n".join(line.replace("animal1", "animal0").replace("animal2", "animal0")
                             for line in text.splitlines()) + "\n")
    result = run(zip_folder(tmp_path / "set", tmp_path / "one.zip"), "f")[0]
    assert "at least two identities" in result["error"] and "found 1" in result["error"]
    csv.write_text(text)

    # a folder on the machine plus a CSV path; cancelled before a worker got to it
    spec = store.create(reid_training_spec("bob", str(tmp_path / "set"), reid_config("g"), identities=str(csv)))
    store.cancel(spec.id, "bob")
    assert run_training(store, spec.id, _Ctx(), lambda: True) is None
    assert store.status(spec.id, "bob").state == "cancelled"
    # cancelled mid-training: the worker stops at the next batch and writes no result
    spec = store.create(reid_training_spec("bob", str(tmp_path / "set"), reid_config("h", epochs=50),
                                           identities=str(csv)))
    calls = []

    def renew():
        calls.append(1)
        if len(calls) == 3:
            store.cancel(spec.id, "bob")

    assert run_training(store, spec.id, _Ctx(), renew) is None
    assert store.result(spec.id) is None and store.status(spec.id, "bob").state == "cancelled"
    with pytest.raises(ValueError, match="loss 'arcface'"):
        reid_training_spec("bob", str(tmp_path / "set"), reid_config("i", loss="arcface"), identities=str(csv))


@pytest.mark.slow
def test_killed_worker_resumes_reid_training_from_the_last_epoch(tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q' / 'huey.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("WILDSPACE_LEASE_TTL", "2")
    csv = make_identity_set(tmp_path / "set", identities=4, per_identity=8)
    queue = JobQueue(load_settings())
    epochs = 8
    job = queue.submit(reid_training_spec("alice", str(tmp_path / "set"),
                                          reid_config("resumed", epochs=epochs, input_size=64,
                                                      identities_per_batch=2, images_per_identity=2),
                                          identities=str(csv)))
    s, seen, killed_at = kill_and_resume(queue, job, tmp_path, epochs, poll=0.02)
    assert killed_at >= 2
    assert s.state == "done" and s.done == epochs, queue.store.result(job)
    assert seen == sorted(seen)  # progress never went back to epoch 0/1
    import torch

    ckpt = torch.load(tmp_path / "storage" / "jobs" / job / "train" / "reid-checkpoint.pt", weights_only=True)
    assert [h["epoch"] for h in json.loads(ckpt["history"])] == list(range(1, epochs + 1))
    assert queue.store.result(job)["model"] == "resumed"


def test_train_tab_reid_submit_checks_and_status(tmp_path, monkeypatch):
    import gradio as gr

    from wildspace.jobs.queue import JobQueue
    from wildspace.ui.train_tab import submit_reid_training, training_status

    monkeypatch.setenv("WILDSPACE_QUEUE", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(load_settings())
    csv = make_identity_set(tmp_path / "set")
    z = zip_folder(tmp_path / "set", tmp_path / "animals.zip")

    def submit(upload=None, folder=None, table=None, backbone=TINY_ARCH, loss="triplet", allow=False):
        return submit_reid_training(queue, "alice", upload, folder, table, "Tab ReID", backbone, loss, "cosine",
                                    2, 32, allow)

    with pytest.raises(gr.Error, match="zip of images with identities.csv"):
        submit()
    with pytest.raises(gr.Error, match="no identities.csv"):
        submit(str(zip_folder(tmp_path / "set", tmp_path / "no-csv.zip", skip="identities.csv")))
    with pytest.raises(gr.Error, match="unknown timm backbone"):
        submit(str(z), backbone="resnet_does_not_exist")
    with pytest.raises(gr.Error, match="loss 'mse'"):
        submit(str(z), loss="mse")
    with pytest.raises(gr.Error, match="identities CSV not found"):
        submit(folder=str(tmp_path / "set"), table=str(tmp_path / "nope.csv"), allow=True)
    with pytest.raises(gr.Error, match="zip of images"):
        submit(folder=str(tmp_path / "set"), table=str(csv), allow=False)  # no folders on a public Space
    job = submit(folder=str(tmp_path / "set"), table=str(csv), allow=True)
    assert queue.store.spec(job).kind == REID_KIND
    assert "**tab-reid**: queued, epoch 0 of 2" in training_status(queue, None, job, "alice")
    run_training(queue.store, job, _Ctx(), lambda: True)
    text = training_status(queue, None, job, "alice")
    assert "epoch 2 of 2" in text and "last epoch: loss" in text and "held-out top-1" in text and "mAP" in text
    assert ("model **tab-reid** is ready: build a gallery with "
            "`python -m wildspace gallery build --model tab-reid --images") in text


@pytest.mark.slow
def test_train_reid_through_the_api_of_a_launched_app(tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    import wildspace.ui.train_tab as train_tab
    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app
    from wildspace.ui.train_tab import training_status

    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    # the app accepts only its listed backbones; this test's tiny one is added to the list
    monkeypatch.setattr(train_tab, "REID_BACKBONES", [*train_tab.REID_BACKBONES, TINY_ARCH])
    service = DetectorService(load_settings())
    queue = JobQueue(service.settings, url=f"sqlite:///{tmp_path / 'q.db'}")
    ctx = start_local_worker(queue, service)
    demo = build_app(service, tmp_path / "out", queue=queue)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        assert {"train_classifier", "train_reid"} <= {d.api_name for d in demo.fns.values()}
        make_identity_set(tmp_path / "set")
        z = zip_folder(tmp_path / "set", tmp_path / "animals.zip")
        client = Client(demo.local_url, verbose=False)
        job, status = client.predict(handle_file(str(z)), "", "", "api-reid", TINY_ARCH, "triplet", "cosine",
                                     2, 32, api_name="/train_reid")
        assert "**api-reid**" in status
        deadline = time.time() + 120
        while queue.store.result(job) is None and time.time() < deadline:
            time.sleep(0.2)
        owner = queue.store.spec(job).owner
        assert queue.store.status(job, owner).state == "done", queue.store.result(job)
        text = training_status(queue, None, job, owner)
        assert "held-out top-1" in text and "model **api-reid** is ready" in text
        with pytest.raises(Exception, match="no identities.csv"):
            client.predict(handle_file(str(zip_folder(tmp_path / "set", tmp_path / "bad.zip", skip="identities.csv"))),
                           "", "", "bad", TINY_ARCH, "triplet", "cosine", 2, 32, api_name="/train_reid")
    finally:
        demo.close()
        ctx.shutdown()
