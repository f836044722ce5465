"""A small reviewable source made here: images with coloured squares and an MD JSON whose
boxes (some far below any threshold) sit on them, uploaded as the Review tab would."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wildspace.settings.limits import Limits

# file -> [(category, conf, bbox, species id or None)]
BOXES = {
    "cam1/a.jpg": [("1", 0.92, [0.1, 0.1, 0.3, 0.4], "0"), ("1", 0.03, [0.6, 0.6, 0.2, 0.2], None)],
    "cam1/b.jpg": [("1", 0.55, [0.5, 0.2, 0.3, 0.3], "1"), ("2", 0.31, [0.05, 0.5, 0.2, 0.4], None)],
    "cam2/c.jpg": [("1", 0.12, [0.2, 0.2, 0.4, 0.4], "0")],
    "cam2/d.jpg": [],
}
SPECIES = {"0": "zebra", "1": "impala"}
COLOURS = {"0": (40, 40, 200), "1": (200, 40, 40), None: (40, 200, 40)}


def make_images(root: Path, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, boxes in BOXES.items():
        w, h = 160, 120
        img = rng.integers(90, 130, (h, w, 3)).astype(np.uint8)
        for _, _, (x, y, bw, bh), sp in boxes:
            img[int(y * h):int((y + bh) * h), int(x * w):int((x + bw) * w)] = COLOURS[sp]
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p, quality=95)
        out[name] = p
    return out


def md_doc() -> dict:
    images = [{"file": f, "detections": [
        {"category": c, "conf": conf, "bbox": bbox, **({"classifications": [[sp, 0.8]]} if sp else {})}
        for c, conf, bbox, sp in boxes]} for f, boxes in BOXES.items()]
    images.append({"file": "cam2/broken.jpg", "failure": "cannot decode image", "detections": None})
    return {"info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt",
                     "detector_metadata": {"megadetector_version": "v5a.0.0", "typical_detection_threshold": 0.2}},
            "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
            "classification_categories": dict(SPECIES), "images": images}


@pytest.fixture
def upload_files(tmp_path) -> tuple[Path, Path]:
    """(MD JSON, zip of the images under a top folder the JSON does not name)."""
    images = make_images(tmp_path / "card")
    md = tmp_path / "results.json"
    md.write_text(json.dumps(md_doc()))
    z = tmp_path / "images.zip"
    with zipfile.ZipFile(z, "w") as f:
        for name, p in images.items():
            f.write(p, f"card/{name}")
    return md, z


@pytest.fixture
def review(tmp_path, upload_files):
    """``(ReviewService, owner, source id)`` over an uploaded source."""
    from wildspace.review.session import ReviewService
    from wildspace.review.sources import Sources, save_upload
    from wildspace.review.store import ReviewStores

    md, z = upload_files
    root = tmp_path / "out" / "review"
    run = root / "run-test1"
    run.mkdir(parents=True)
    save_upload(md, [z], run, "alice", Limits().upload_limits())
    service = ReviewService(Sources({"review": root}), ReviewStores(tmp_path / "home" / "review"),
                            tmp_path / "views", 10_000_000)
    yield service, "alice", "run:review/run-test1"
    service.stores.close()
