"""Auto-crop training images with a detector (the tiger seed project trained on detector
crops): each image becomes its most confident animal box, grown by a margin; images without
a box above the threshold are kept whole (and counted)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from wildspace.train.data import Sample, load_samples

NOT_ANIMAL = ("person", "human", "vehicle")


@dataclass(frozen=True)
class CropSummary:
    csv: Path
    cropped: int
    whole: int
    failed: int


def crop_training_data(data: str | Path, out_dir: str | Path, detector, threshold: float = 0.2,
                       margin: float = 0.1, images_dir: str | Path | None = None,
                       max_pixels: int = 200_000_000, tick: Callable[[], object] | None = None) -> CropSummary:
    """Write crops under ``out_dir/<label>/`` and a ``crops.csv`` (file, label, location,
    sequence) that :func:`wildspace.train.data.load_samples` reads.

    Args:
        detector: a built detector (``DetectorService.load(...)``).
        threshold: minimum detection confidence of the box used.
    """
    from PIL import Image

    from wildspace.classify.crops import crop_box
    from wildspace.detect.pipeline import detect_files
    from wildspace.media.images import ImageReadError, load_image

    samples: Sequence[Sample] = load_samples(data, images_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = detector.info.labels
    files = [(Path(s.path), str(i)) for i, s in enumerate(samples)]
    rows, cropped, whole, failed = [], 0, 0, 0
    for result in detect_files(detector, files, threshold, batch_size=None, max_pixels=max_pixels):
        i = int(result.file)
        s = samples[i]
        if tick is not None:
            tick()
        if result.failed:
            failed += 1
            continue
        boxes = [d for d in result.detections or () if d.conf >= threshold
                 and labels[d.class_id].lower() not in NOT_ANIMAL]
        target = out / s.label / f"{i:06d}_{Path(s.path).stem}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        if boxes:
            try:
                rgb = load_image(s.path, max_pixels)
            except ImageReadError:
                failed += 1
                continue
            best = max(boxes, key=lambda d: d.conf)
            Image.fromarray(crop_box(rgb, best.bbox_xywh_norm, margin)).save(target, quality=95)
            cropped += 1
            rows.append((str(target), s.label, s.location, s.sequence))
        else:
            whole += 1
            rows.append((s.path, s.label, s.location, s.sequence))
    table = out / "crops.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "location", "sequence"])
        w.writerows(rows)
    return CropSummary(table, cropped, whole, failed)
