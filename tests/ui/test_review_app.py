"""The Review tab through gradio_client on the real app: a batch run in the Batch tab keeps its
low boxes and can be reviewed at any threshold; corrections survive an app restart; another
visitor sees neither the batch nor the corrections; a queued job is reviewable while it runs."""

from __future__ import annotations

import pytest

from tests.ui.conftest import MODEL
from wildspace.formats.megadetector import read_results

pytestmark = pytest.mark.slow
ALICE = {"X-Wildspace-Token": "alice-review-token-0123456789abcdef"}
MALLORY = {"X-Wildspace-Token": "mallory-review-token-0123456789abcdef"}


def _start(service, out):
    from wildspace.ui.app import build_app

    demo = build_app(service, out)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return demo


def test_review_a_batch_restart_and_another_visitor(app_service, upload_zip, tmp_path):
    from gradio_client import Client, handle_file

    demo = _start(app_service, tmp_path / "out")
    try:
        alice = Client(demo.local_url, verbose=False, headers=ALICE)
        summary, _, table, downloads = alice.predict([handle_file(str(upload_zip))], MODEL, 0.5,
                                                     api_name="/detect_batch")
        assert "4 files" in summary
        md = read_results(next(p for p in downloads if p.endswith("_megadetector.json")))
        confs = [d["conf"] for im in md["images"] for d in im["detections"] or ()]
        assert min(confs) < 0.5 and min(confs) >= 0.005  # the run kept its low boxes, for review
        assert md["info"]["detector_metadata"]["output_threshold"] == 0.005
        choices = alice.predict(api_name="/review_sources")
        (title, sid), = choices["choices"] if isinstance(choices, dict) else choices
        assert sid.startswith("run:batch/") and "4 files" in title
        out = alice.predict(sid, 0.5, api_name="/review_open")
        where = out[1]
        assert "of 3" in where  # the truncated file failed: not paged through
        low = alice.predict(0.01, "all", "all", "all", "all", False, api_name="/review_view")
        assert low[1] == where  # same image, more boxes: nothing ran again
        assert low[2].count("— pending") > out[2].count("— pending") and "below the threshold" in out[2]
        alice.predict(0.5, "all", "all", "all", "all", False, api_name="/review_view")
        after = alice.predict("Ann", api_name="/review_accept")
        assert "2 of 3" in after[1] and "Reviewed 1/3" in after[-1]
        alice.predict("Ann", api_name="/review_empty")
        files, note = alice.predict(0.5, "Ann", api_name="/review_export")
        assert any(f.endswith("_coco.zip") for f in files) and "COCO boxes: 2 reviewed images" in note
        doc = read_results(next(f for f in files if f.endswith("_megadetector.json")))
        reviewed = [im for im in doc["images"] if im.get("review")]
        assert sorted(im["review"]["status"] for im in reviewed) == ["empty", "reviewed"]

        mallory = Client(demo.local_url, verbose=False, headers=MALLORY)
        got = mallory.predict(api_name="/review_sources")
        assert not (got["choices"] if isinstance(got, dict) else got)
        with pytest.raises(Exception, match="No such source"):
            mallory.predict(sid, 0.5, api_name="/review_open")
    finally:
        demo.close()

    demo = _start(app_service, tmp_path / "out")  # a restart: same data dir and run folders
    try:
        alice = Client(demo.local_url, verbose=False, headers=ALICE)
        out = alice.predict(sid, 0.5, api_name="/review_open")
        assert "Reviewed 2/3" in out[10]  # the progress line (after the view outputs come the filters)
        files, _ = alice.predict(0.5, "Ann", api_name="/review_export")
        doc = read_results(next(f for f in files if f.endswith("_megadetector.json")))
        assert sum(1 for im in doc["images"] if im.get("review")) == 2
    finally:
        demo.close()


def test_a_running_job_is_reviewed_as_far_as_it_got(app_service, tmp_path, shared_data):
    from wildspace.jobs.queue import JobQueue
    from wildspace.jobs.store import JobSpec, JobStore
    from wildspace.review.session import ReviewService
    from wildspace.review.sources import Sources
    from wildspace.review.store import ReviewStores
    from wildspace.types import Detection, ImageResult

    queue = JobQueue(app_service.settings, url=f"sqlite:///{tmp_path / 'q.db'}", store=JobStore(tmp_path / "st"))
    store = queue.store
    job_id = store.new_id()
    src = shared_data / "camera-trap" / "ena24-small"
    names = ["2480.jpg", "352.jpg", "49.jpg"]
    inputs = [{"name": n, "path": store.put_input(job_id, src / n, n)} for n in names]
    store.create(JobSpec(owner="alice", kind="detect-images", inputs=inputs, model=MODEL, threshold=0.005,
                         chunk_size=1, id=job_id))
    store.put_detector(job_id, ("animal", "person", "vehicle"), "md_v5a.0.0.pt", {})
    store.put_item(job_id, 0, ImageResult("2480.jpg", (Detection(0, 0.8, (0.1, 0.1, 0.2, 0.2)),),
                                          width=10, height=10), worker="w")
    service = ReviewService(Sources({}, queue, cache_dir=tmp_path / "cache"), ReviewStores(tmp_path / "home"),
                            tmp_path / "views", 10**8)
    (title, sid), = service.sources.list("alice")
    assert sid == f"job:{job_id}" and "running" in title
    v = service.open("alice", "s", sid, 0.2)
    assert "1 of 1" in v.where and "so far (of 3)" in v.progress and v.image is not None
    service.act("alice", "s", "accept", "Ann")
    store.put_item(job_id, 1, ImageResult("352.jpg", (), width=10, height=10), worker="w")
    import time

    time.sleep(2.1)  # the running job's copy is read again when older than 2 s
    v = service.set_view("alice", "s", 0.2, service.cursor("alice", "s").filters, reload=True)
    assert "1 of 2" in v.where and "Reviewed 1/2" in v.progress
    assert service.sources.list("bob") == []


def test_upload_an_md_json_with_its_images_and_review_it(running_app, tmp_path):
    import json
    import zipfile

    from gradio_client import Client, handle_file

    from tests.review.conftest import make_images, md_doc

    images = make_images(tmp_path / "card")
    md = tmp_path / "timelapse.json"
    md.write_text(json.dumps(md_doc()))
    z = tmp_path / "card.zip"
    with zipfile.ZipFile(z, "w") as f:
        for name, p in images.items():
            f.write(p, name)
    alice = Client(running_app.local_url, verbose=False, headers=ALICE)
    got = alice.predict(handle_file(str(md)), [handle_file(str(z))], api_name="/review_upload")
    sid = got["value"] if isinstance(got, dict) else got
    assert sid.startswith("run:review/run-")
    out = alice.predict(sid, 0.2, api_name="/review_open")
    assert "1 of 4" in out[1] and "cam1/a.jpg" in out[1] and out[0]
    alice.predict("Ann", api_name="/review_accept")
    plot, table = alice.predict(api_name="/review_precision_recall")
    assert plot and table["data"][3][0] == 0.2 and table["data"][3][3] == 1  # one true positive at 0.2
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []}')
    with pytest.raises(Exception, match="Not a MegaDetector results file"):
        alice.predict(handle_file(str(bad)), [], api_name="/review_upload")
    mallory = Client(running_app.local_url, verbose=False, headers=MALLORY)
    with pytest.raises(Exception, match="No such source"):
        mallory.predict(sid, 0.2, api_name="/review_open")


def test_train_a_classifier_from_the_review_without_handling_files(app_service, tmp_path):
    """*Train in the Train tab's queue*: the reviewed crops go to a training job as a zip of
    class folders, with nothing downloaded or uploaded by hand."""
    import io
    import json
    import zipfile

    import numpy as np
    from gradio_client import Client, handle_file
    from PIL import Image

    from wildspace.jobs.queue import JobQueue
    from wildspace.jobs.store import JobStore
    from wildspace.ui.app import build_app

    rng = np.random.default_rng(2)
    z, images = tmp_path / "card.zip", []
    with zipfile.ZipFile(z, "w") as f:
        for i in range(6):
            img = rng.integers(100, 140, (60, 80, 3)).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            f.writestr(f"i{i}.png", buf.getvalue())
            images.append({"file": f"i{i}.png", "detections": [
                {"category": "1", "conf": 0.9, "bbox": [0.2, 0.2, 0.5, 0.5], "classifications": [[str(i % 2), 0.9]]}]})
    md = tmp_path / "md.json"
    md.write_text(json.dumps({"info": {"format_version": "1.5", "detector": "x.pt"},
                              "detection_categories": {"1": "animal"},
                              "classification_categories": {"0": "zebra", "1": "impala"}, "images": images}))
    queue = JobQueue(app_service.settings, url=f"sqlite:///{tmp_path / 'q.db'}", store=JobStore(tmp_path / "st"))
    demo = build_app(app_service, tmp_path / "out", queue=queue)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        alice = Client(demo.local_url, verbose=False, headers=ALICE)
        sid = alice.predict(handle_file(str(md)), [handle_file(str(z))], api_name="/review_upload")
        alice.predict(sid["value"] if isinstance(sid, dict) else sid, 0.2, api_name="/review_open")
        for _ in range(6):
            alice.predict("Ann", api_name="/review_accept")
        note, shown = alice.predict("from-review", 1, api_name="/review_train")
        job = note.split("`")[1]
        assert shown == job and "Train** tab shows how it goes" in note  # in the Train tab's job field...
        fns = list(demo.fns.values())
        train_job = next(o for o in next(f for f in fns if f.api_name == "review_train").outputs
                         if o.elem_id == "train-job")
        tick = next(f for f in fns if train_job in f.inputs and any(t[1] == "tick" for t in f.targets))
        from types import SimpleNamespace

        text, _ = tick.fn(job, None, SimpleNamespace(username=None, headers=ALICE, session_hash=None))
        assert "**from-review**: queued, epoch 0 of 1" in text  # ...which the Train tab's timer follows
        spec = queue.store.spec(job)
        assert spec.kind != "detect-images" and "6 reviewed crops of 2 species" in note
        data = queue.store.local_input(job, spec.inputs[0]["path"], tmp_path / "cache")
        with zipfile.ZipFile(data) as f:
            assert sorted({n.split("/")[0] for n in f.namelist()}) == ["impala", "zebra"]
    finally:
        demo.close()


def test_gallery_suggestions_fill_the_individual_id(running_app, app_service, tmp_path):
    """*Suggest from gallery*: the selected box's crop is looked up in a gallery the visitor can
    see; its animal comes first, and a click fills the individual ID (for that box only)."""

    from gradio_client import Client, handle_file

    from tests.reid.synthetic import write_set
    from tests.review.test_suggest import frames_upload
    from wildspace.services.galleries import GalleryService

    table = write_set(tmp_path / "pair", counts=(("ana", 3), ("bo", 3)))
    GalleryService(app_service.settings, background_calibration=False).build("pair-app", tmp_path / "pair", table)
    md, z = frames_upload(tmp_path, (("a-bo.jpg", 1001, 901), ("b-ana.jpg", 1000, 902)))
    alice = Client(running_app.local_url, verbose=False, headers=ALICE)
    got = alice.predict(handle_file(str(md)), [handle_file(str(z))], api_name="/review_upload")
    alice.predict(got["value"] if isinstance(got, dict) else got, 0.2, api_name="/review_open")
    alice.predict("d0", api_name="/review_select")
    radio, note = alice.predict("pair-app", api_name="/review_suggest")
    assert [v for _, v in radio["choices"]] == ["bo", "ana", "(new animal)"] and "**bo**" in note
    assert radio["choices"][0][0].startswith("bo · p=") and "box 1 of a-bo.jpg" in radio["label"]
    picked = alice.predict("bo", api_name="/review_pick")
    assert (picked["value"] if isinstance(picked, dict) else picked) == "bo"
    alice.predict(api_name="/review_next")  # another image: those matches are not for its box
    with pytest.raises(Exception, match="another box"):
        alice.predict("bo", api_name="/review_pick")
    with pytest.raises(Exception, match="no gallery named 'nope'"):
        alice.predict("nope", api_name="/review_suggest")


def test_a_video_run_is_reviewed_frame_by_frame(running_app, shared_data):
    """The Video tab's run keeps its low boxes; the Review tab pages through its sampled frames
    and exports the corrected MegaDetector video JSON."""
    from gradio_client import Client, handle_file

    from tests.review.md_validator import md_validation_errors

    alice = Client(running_app.local_url, verbose=False, headers=ALICE)
    _, _, table, md_json = alice.predict([handle_file(str(shared_data / "video" / "chimp.mp4"))], MODEL, 0.3,
                                         "every S seconds", 5, api_name="/detect_video")
    assert table["data"][0][2] == 3  # 15 s at one frame every 5 s
    doc = read_results(md_json)
    assert doc["info"]["detector_metadata"]["output_threshold"] == 0.005
    got = alice.predict(api_name="/review_sources")
    sid = next(s for t, s in (got["choices"] if isinstance(got, dict) else got) if s.startswith("run:video/"))
    out = alice.predict(sid, 0.3, api_name="/review_open")
    assert "1 of 3" in out[1] and "chimp.mp4#frame000000" in out[1] and out[0]
    alice.predict("Ann", api_name="/review_accept")
    alice.predict("Ann", api_name="/review_empty")
    assert "chimp.mp4#frame000300" in alice.predict(api_name="/review_next")[1]
    files, note = alice.predict(0.3, "Ann", api_name="/review_export")
    assert not any(f.endswith("_camtrap_dp.zip") for f in files) and "video JSON" in note
    md = next(f for f in files if f.endswith("_megadetector.json"))
    assert md_validation_errors(md) == []
    chimp = read_results(md)["images"][0]
    assert chimp["frames_processed"] == [0, 150, 300]
    assert [(f["frame"], f["status"]) for f in chimp["review"]["frames"]] == [(0, "reviewed"), (150, "empty")]
    assert not any(d["frame_number"] == 150 for d in chimp["detections"])
    assert all(d["conf"] == 1.0 for d in chimp["detections"] if d["frame_number"] == 0)
