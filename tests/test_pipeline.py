"""The batch pipeline streams (inputs pulled lazily, results out before the end), decodes
big JPEGs at reduced size on request, and sizes batches; the prefetch thread behaves."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from wildspace.detect.batch_size import CPU_BATCH_SIZE, auto_batch_size, batch_size_for_memory
from wildspace.detect.pipeline import detect_files, prefetched
from wildspace.media.images import load_image, load_image_sized
from wildspace.services.detectors import DetectorService


def _jpeg(path, w, h, orientation=None):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(path, quality=90, exif=exif.tobytes())
    return path


@pytest.fixture(scope="module")
def detector(model_files):
    return DetectorService().load(weights=model_files["mdv5_p6"], image_size=128)


def test_inputs_are_pulled_lazily_and_results_stream_out(detector, tmp_path):
    img = _jpeg(tmp_path / "a.jpg", 96, 64)
    pulled = 0

    def inputs():
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield img, f"{i}.jpg"

    stream = detect_files(detector, inputs(), 0.1, batch_size=2, workers=2)
    first = next(stream)
    assert first.width == 96 and first.height == 64
    assert pulled <= 16  # a few batches ahead, never the whole input
    stream.close()


def test_reduced_decode_keeps_full_size_and_orientation(tmp_path):
    big = _jpeg(tmp_path / "big.jpg", 2400, 1600)
    full = load_image(big)
    reduced, full_hw = load_image_sized(big, reduce_to=500)
    assert full.shape == (1600, 2400, 3) and full_hw == (1600, 2400)
    assert reduced.shape == (400, 600, 3)  # 1/4 scale: the largest keeping the long side >= 500
    rotated, full_hw = load_image_sized(_jpeg(tmp_path / "r.jpg", 2400, 1600, orientation=6), reduce_to=500)
    assert rotated.shape == (600, 400, 3) and full_hw == (2400, 1600)
    # too small to gain, or not a JPEG: decoded as is
    assert load_image_sized(_jpeg(tmp_path / "s.jpg", 800, 600), reduce_to=500)[0].shape == (600, 800, 3)
    Image.fromarray(full).save(tmp_path / "big.png")
    assert load_image_sized(tmp_path / "big.png", reduce_to=500)[0].shape == (1600, 2400, 3)


def test_fast_decode_reports_the_file_size(detector, tmp_path):
    big = _jpeg(tmp_path / "big.jpg", 2400, 1600)
    (r,) = detect_files(detector, [(big, "big.jpg")], 0.1, fast_decode=True)
    assert not r.failed and (r.width, r.height) == (2400, 1600)


def test_batch_size_from_memory():
    assert batch_size_for_memory(free_bytes=10_000, per_image_bytes=1_000) == 6
    assert batch_size_for_memory(free_bytes=10_000, per_image_bytes=1_000, fixed_bytes=3_000) == 3
    assert batch_size_for_memory(free_bytes=100, per_image_bytes=1_000) == 1
    assert batch_size_for_memory(free_bytes=10**12, per_image_bytes=1) == 64


def test_auto_batch_size_on_cpu(detector):
    # the service's detector is the torch-free export (two sessions) once an earlier test has
    # exported these weights, else the eager one (one batch at a time)
    sessions = getattr(detector, "parallel_batches", 1)
    preferred = getattr(detector, "cpu_batch_size", None)  # OpenVINO bf16: single images
    assert auto_batch_size(detector) == (preferred or CPU_BATCH_SIZE // sessions)
    assert auto_batch_size(detector, 7) == 7
    assert auto_batch_size(object()) == CPU_BATCH_SIZE  # no parallel_batches: one at a time
    # the same images in flight when a detector runs two batches at once (memory stays put)
    assert auto_batch_size(_TwoStreams()) == CPU_BATCH_SIZE // 2
    assert auto_batch_size(_TwoStreams(), 3) == 3


def test_auto_batch_size_takes_the_runtimes_preference():
    class OneAtATime:
        parallel_batches = 1
        cpu_batch_size = 1

    class NoPreference(OneAtATime):
        cpu_batch_size = None

    assert auto_batch_size(OneAtATime()) == 1
    assert auto_batch_size(OneAtATime(), 6) == 6  # --batch-size still wins
    assert auto_batch_size(NoPreference()) == CPU_BATCH_SIZE


def test_prefetched_keeps_order_raises_and_stops_early():
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(prefetched(failing()))

    produced = []
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetched(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.wait(5)
    assert len(produced) <= 3 + 2 + 2


class _TwoStreams:
    """A fake detector with two network sessions: the first batch waits (10 s at most) until a
    second is in ``run`` with it, and every batch holding the image whose pixels are 7 fails."""

    parallel_batches = 2

    def __init__(self):
        from wildspace.types import DetectorInfo

        self.info = DetectorInfo(name="fake", labels=("animal",), input_size=32)
        self.two_inside = threading.Event()
        self.calls = 0
        self.lock = threading.Lock()
        self.inside = 0

    def prepare(self, image):
        from wildspace.detect.base import Prepared

        return Prepared(key=image.shape, data=image, orig_hw=image.shape[:2])

    def run(self, batch, conf):
        from wildspace.types import Detection

        with self.lock:
            self.inside += 1
            self.calls += 1
            first = self.calls == 1
            if self.inside == 2:
                self.two_inside.set()
        try:
            if first and not self.two_inside.wait(10):
                raise RuntimeError("no second batch came while the first ran")
            if any(int(p.data[0, 0, 0]) == 7 for p in batch):
                raise RuntimeError("this batch holds the bad image")
            return [(Detection(0, 0.9, (0.1, 0.1, 0.2, 0.2)),) for _ in batch]
        finally:
            with self.lock:
                self.inside -= 1


def test_detectors_with_two_sessions_run_two_batches_at_once(tmp_path):
    files = []
    for i in range(12):
        rgb = np.full((24, 40, 3), i, np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
        files.append((tmp_path / f"{i}.png", f"{i}.png"))
    det = _TwoStreams()
    seen_in: set = set()
    results = list(detect_files(det, iter(files), 0.1, batch_size=2, workers=2,
                                on_result=lambda r: seen_in.add(threading.current_thread().name)))
    assert det.two_inside.is_set()  # two batches were in the network at the same time
    assert sorted(r.file for r in results) == sorted(name for _, name in files)  # each once
    failed = [r for r in results if r.failure]
    assert [r.file for r in failed] == ["7.png"]  # only the bad image, its batch partner rerun alone
    assert all(len(r.detections) == 1 for r in results if not r.failure)
    assert seen_in == {threading.current_thread().name}  # callbacks on the caller's thread
