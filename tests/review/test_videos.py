"""Videos reviewed frame by frame: a video run's sampled frames are the review items (each
shown from its frame, decoded from the video once), corrections are per frame, and the
corrected MegaDetector *video* JSON has them frame by frame and passes MegaDetector's validator."""

from __future__ import annotations

import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from wildspace.formats.megadetector import build_results, read_results, write_results
from wildspace.types import Detection, ImageResult

FRAMES = 20  # a 20-frame clip at 10 fps, every 5th frame sampled
SAMPLED = (0, 5, 10, 15)
W, H = 160, 96


def _clip(path):
    """Frame n: grey with a bright square moving right (x = 4 n px): frames are told apart."""
    from wildspace.media.video import write_h264

    def frames():
        for n in range(FRAMES):
            img = np.full((H, W, 3), 90, np.uint8)
            img[30:60, 4 * n:4 * n + 30] = (230, 220, 40)
            yield img
    return write_h264(frames(), path, 10.0)


@pytest.fixture
def video_review(tmp_path):
    """``(service, owner, source id, run folder)``: a recorded video run of one clip, two boxes a frame."""
    from wildspace.review.session import ReviewService
    from wildspace.review.sources import Sources, record_video_run
    from wildspace.review.store import ReviewStores

    run = tmp_path / "out" / "video" / "run-clip"
    (run / "inputs").mkdir(parents=True)
    clip = _clip(run / "inputs" / "clip.mp4")
    dets = []
    for n in SAMPLED:
        dets.append(Detection(0, 0.9, (4 * n / W, 30 / H, 30 / W, 30 / H), n))
        dets.append(Detection(0, 0.04, (0.8, 0.8, 0.1, 0.1), n))  # a low one, kept for review
    results = [ImageResult("clip.mp4", tuple(dets), width=W, height=H, frame_rate=10.0, frames_processed=SAMPLED),
               ImageResult("broken.avi", None, failure="cannot decode video")]
    md = write_results(build_results(results, ("animal", "person", "vehicle"), "md_v5a.0.0.pt",
                                     {"output_threshold": 0.005}), run / "exports" / "clip_megadetector.json")
    out = SimpleNamespace(exports={"md-json": md}, results=results, info=SimpleNamespace(name="test-model"),
                          files={"clip.mp4": clip, "broken.avi": run / "inputs" / "gone.avi"})
    assert record_video_run(run, out, "alice") is not None
    service = ReviewService(Sources({"video": tmp_path / "out" / "video"}), ReviewStores(tmp_path / "home"),
                            tmp_path / "views", 10**7)
    yield service, "alice", "run:video/run-clip", run
    service.stores.close()


def test_sampled_frames_are_the_items_and_show_their_own_frame(video_review):
    from wildspace.media.images import load_image
    from wildspace.media.video import Sampling, read_frames

    service, owner, sid, run = video_review
    ((title, listed),) = service.sources.list(owner)
    assert listed == sid and "2 videos, 4 frames" in title and service.sources.list("bob") == []
    v = service.open(owner, "s", sid, 0.2)
    assert "1 of 4" in v.where and "clip.mp4#frame000000" in v.where  # the failed video is not paged
    o = service.opened(owner, sid)
    assert sorted(o.states.states) == ["broken.avi", *(f"clip.mp4#frame{n:06d}" for n in SAMPLED)]
    decoded = {f.number: f.image for f in read_frames(run / "inputs" / "clip.mp4", Sampling(every_n_frames=5))}
    for n in SAMPLED:
        shown = load_image(o.source.image_path(f"clip.mp4#frame{n:06d}"))
        assert np.abs(shown.astype(int) - decoded[n].astype(int)).mean() < 3  # that frame (JPEG of it)
        others = [m for m in SAMPLED if m != n]
        assert all(np.abs(shown.astype(int) - decoded[m].astype(int)).mean() > 3 for m in others)
    assert len(list((run / "review-frames").rglob("*.jpg"))) == 4  # decoded once, kept
    low = service.set_view(owner, "s", 0.01, service.cursor(owner, "s").filters)
    assert low.boxes.count("— pending") == 2  # the threshold shows the low boxes: nothing ran again


def test_frame_corrections_in_the_md_video_json(video_review, tmp_path):
    from tests.review.md_validator import md_validation_errors
    from wildspace.review.exports import write_md, write_yolo

    service, owner, sid, _ = video_review
    service.open(owner, "s", sid, 0.2)
    service.act(owner, "s", "accept", "Ann")  # frame 0 as shown: its low box rejected
    service.act(owner, "s", "reject", "Ann")  # frame 5: the model's box is wrong...
    service.act(owner, "s", "add", "Ann", bbox=(0.5, 0.1, 0.2, 0.3), class_id=1)  # ...a person is there
    service.act(owner, "s", "accept", "Ann")
    service.act(owner, "s", "empty", "Ann")  # frame 10 empty; frame 15 left as the model gave it
    path = write_md(service.opened(owner, sid), tmp_path / "reviewed.json")
    assert md_validation_errors(path) == []
    doc = read_results(path)
    clip = next(im for im in doc["images"] if im["file"] == "clip.mp4")
    assert clip["frames_processed"] == list(SAMPLED) and clip["frame_rate"] == 10.0
    by_frame: dict[int, list[dict]] = {}
    for d in clip["detections"]:
        by_frame.setdefault(d["frame_number"], []).append(d)
    assert [(d["review"], d["conf"]) for d in by_frame[0]] == [("accepted", 1.0)]
    ((added,),) = [by_frame[5]]
    assert added["review"] == "added" and added["category"] == "2" and added["bbox"] == [0.5, 0.1, 0.2, 0.3]
    assert 10 not in by_frame  # empty
    assert sorted(d["conf"] for d in by_frame[15]) == [0.04, 0.9] and "review" not in by_frame[15][0]
    assert len(clip["original_detections"]) == 8
    assert clip["review"]["reviewed_frames"] == 3 and clip["review"]["sampled_frames"] == 4
    assert [(f["frame"], f["status"], f["reviewer"]) for f in clip["review"]["frames"]] == [
        (0, "reviewed", "Ann"), (5, "reviewed", "Ann"), (10, "empty", "Ann")]
    broken = next(im for im in doc["images"] if im["file"] == "broken.avi")
    assert broken["failure"] and broken["frame_rate"] == -1.0

    yolo, n = write_yolo(service.opened(owner, sid), tmp_path / "yolo.zip")  # frames are training images
    with zipfile.ZipFile(yolo) as z:
        assert n == 3 and z.read("labels/clip_mp4_frame000005.txt").decode().split()[0] == "1"
        assert "images/clip_mp4_frame000005.jpg" in z.namelist()
    json.dumps(doc)
