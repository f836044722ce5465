"""The gallery's top matches for a box under review: a gallery of two animals (weight-free
``local`` matching, synthetic coats), a camera-trap frame with one of them in a box, and the
suggestions for that box name that animal first."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.reid.synthetic import coat, photo, write_set
from wildspace.settings.limits import Limits

# the animal's photo pasted into a wider frame, and its box there (normalised x, y, w, h)
FRAME, AT = (960, 540), (420, 120)


def frame_with(animal_seed: int, seed: int) -> tuple[np.ndarray, list[float]]:
    rng = np.random.default_rng(seed)
    canvas = rng.integers(70, 170, (FRAME[1], FRAME[0], 3)).astype(np.uint8)
    shot = photo(coat(animal_seed), seed)
    h, w = shot.shape[:2]
    canvas[AT[1]:AT[1] + h, AT[0]:AT[0] + w] = shot
    return canvas, [AT[0] / FRAME[0], AT[1] / FRAME[1], w / FRAME[0], h / FRAME[1]]


def frames_upload(tmp_path, frames) -> tuple:
    """``(md.json, frames.zip)`` as a user uploads them: each ``(name, animal seed, seed)``
    frame in the zip, and an MD JSON with one animal box per frame."""
    z, images = tmp_path / "frames.zip", []
    with zipfile.ZipFile(z, "w") as f:
        for name, animal, seed in frames:
            rgb, bbox = frame_with(animal, seed)
            Image.fromarray(rgb).save(tmp_path / name, quality=92)
            f.write(tmp_path / name, name)
            images.append({"file": name, "detections": [{"category": "1", "conf": 0.9, "bbox": bbox}]})
    md = tmp_path / "md.json"
    md.write_text(json.dumps({"info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
                              "detection_categories": {"1": "animal"}, "images": images}))
    return md, z


@pytest.fixture
def gallery_and_review(tmp_path):
    """A GalleryService with gallery 'pair' (ana x3, bo x3) and a review of two frames: bo's and ana's."""
    from wildspace.review.session import ReviewService
    from wildspace.review.sources import Sources, save_upload
    from wildspace.review.store import ReviewStores
    from wildspace.services.galleries import GalleryService
    from wildspace.settings import load_settings

    folder = tmp_path / "pair"
    table = write_set(folder, counts=(("ana", 3), ("bo", 3)))  # coats 1000 (ana) and 1001 (bo)
    galleries = GalleryService(load_settings(), background_calibration=False)
    galleries.build("pair", folder, table)
    md, z = frames_upload(tmp_path, (("bo.jpg", 1001, 901), ("ana.jpg", 1000, 902)))
    root = tmp_path / "out" / "review"
    (root / "run-frames").mkdir(parents=True)
    save_upload(md, [z], root / "run-frames", "alice", Limits().upload_limits())
    service = ReviewService(Sources({"review": root}), ReviewStores(tmp_path / "home"), tmp_path / "views", 10**7)
    yield galleries, service, "run:review/run-frames"
    service.stores.close()


def test_the_boxed_animal_comes_first_among_the_suggestions(gallery_and_review):
    from wildspace.review.suggest import NEW_ANIMAL, crop_of, suggestions

    galleries, service, sid = gallery_and_review
    service.open("alice", "s", sid, 0.2)  # ana.jpg first (by name), its box selected
    for expected in ("ana", "bo"):
        o, s, key = service.selected("alice", "s")
        assert s.file == f"{expected}.jpg" and key == "d0"
        crop = crop_of(o, s.file, key, 10**7)
        assert crop.shape[1] > 480 and crop.shape[0] > 360  # the box with a margin, not the frame
        found, verdict = suggestions(galleries, "pair", crop, owner=None)
        identities = [x.identity for x in found]
        assert identities[0] == expected, (identities, verdict)
        assert NEW_ANIMAL in identities and set(identities) == {"ana", "bo", NEW_ANIMAL}
        top = found[0]
        assert top.probability is not None and top.probability > 0.5 and top.label.startswith(f"{expected} · p=")
        assert f"**{expected}**" in verdict
        service.move("alice", "s", +1)


def test_an_unknown_animal_puts_new_animal_first_and_a_box_is_needed(gallery_and_review, tmp_path):
    from wildspace.errors import UsageError
    from wildspace.review.suggest import NEW_ANIMAL, suggestions

    galleries, service, sid = gallery_and_review
    stranger, _ = frame_with(4242, 7)
    found, verdict = suggestions(galleries, "pair", stranger[120:480, 420:900], owner=None)
    assert found[0].identity == NEW_ANIMAL and "new animal" in verdict
    service.open("alice", "s", sid, 0.2)
    service.act("alice", "s", "reject", "Ann")
    with pytest.raises(UsageError, match="no box selected"):
        service.selected("alice", "s")
