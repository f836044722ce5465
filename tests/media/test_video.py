"""Video: sampling, H.264 writing, bad videos as failures, detection on every shared video."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

from wildspace.detect.video import detect_video
from wildspace.formats.megadetector import build_results, validate
from wildspace.media.video import Sampling, VideoReadError, read_frames, video_fps, write_h264

VIDEO_EXT = (".mp4", ".avi", ".asf")


def _videos(shared_data):
    return sorted(p for p in (shared_data / "video").iterdir() if p.suffix.lower() in VIDEO_EXT)


def test_sampling_every_n_frames_and_every_s_seconds(shared_data):
    chimp = shared_data / "video" / "chimp.mp4"
    assert video_fps(chimp) == pytest.approx(30.0)
    frames = list(read_frames(chimp, Sampling(every_n_frames=30)))
    assert [f.number for f in frames] == list(range(0, 450, 30))
    assert frames[0].image.shape == (180, 320, 3)
    by_time = list(read_frames(chimp, Sampling(every_seconds=2.5)))
    assert [f.number for f in by_time] == [0, 75, 150, 225, 300, 375]


def test_write_h264_is_browser_playable(tmp_path):
    frames = (np.full((61, 99, 3), i * 20, np.uint8) for i in range(5))  # odd sizes are padded
    out = write_h264(frames, tmp_path / "x.mp4", fps=2)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert (s.codec_context.width, s.codec_context.height) == (100, 62)
        assert sum(1 for _ in c.decode(s)) == 5


def test_bad_videos_are_failures(tmp_path, model_files, shared_data):
    from wildspace.services.detectors import DetectorService

    det = DetectorService().load(weights=model_files["mdv5_p6"], image_size=128)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    zero = tmp_path / "zero.mp4"
    with av.open(str(zero), "w") as c:  # a valid container with no frame at all
        s = c.add_stream("libx264", rate=1)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    for path in (junk, empty, zero):
        r = detect_video(det, path, path.name, 0.1, annotated_path=tmp_path / f"{path.stem}_out.mp4")
        assert r.failed and r.detections is None, path.name
    truncated = tmp_path / "truncated.mp4"
    data = (shared_data / "video" / "chimp.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    r = detect_video(det, truncated, "truncated.mp4", 0.1, Sampling(every_n_frames=50))
    assert r.failed or len(r.frames_processed) > 0  # never an exception
    wrong_ext = tmp_path / "clip.avi"
    shutil.copyfile(shared_data / "video" / "chimp.mp4", wrong_ext)
    r = detect_video(det, wrong_ext, "clip.avi", 0.1, Sampling(every_n_frames=150))
    assert not r.failed and r.frames_processed == (0, 150, 300)
    with pytest.raises(VideoReadError):
        list(read_frames(junk))


@pytest.mark.slow
def test_every_shared_video_is_processed(shared_data, model_files, tmp_path):
    from wildspace.services.detectors import DetectorService

    det = DetectorService().load(weights=model_files["mdv5_p6"], image_size=128)
    results = []
    codecs = set()
    for path in _videos(shared_data):
        with av.open(str(path)) as c:
            codecs.add(c.streams.video[0].codec_context.name)
        out = tmp_path / f"{path.stem}.mp4"
        r = detect_video(det, path, path.name, 0.0001, Sampling(every_seconds=5), annotated_path=out)
        assert not r.failed, (path.name, r.failure)
        assert r.frames_processed and r.frames_processed[0] == 0
        assert all(d.frame_number in r.frames_processed for d in r.detections)
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
        results.append(r)
    assert len(results) == 20 and {"h264", "mpeg4"} <= codecs
    assert len(codecs) >= 3
    doc = build_results(results, det.info.labels, "random.pt")
    validate(doc)
    assert all("frame_rate" in im and "frames_processed" in im for im in doc["images"])
