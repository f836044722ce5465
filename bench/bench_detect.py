"""Detection throughput: wildspace's batch pipeline vs the reference per-image path.

Same weights, same images (the shared camera-trap images repeated), same size. The reference
path is the loop Pytorch-Wildlife-style code runs for legacy YOLOv5 checkpoints: for each
file, decode -> letterbox -> forward (batch of 1) -> NMS, nothing overlapped. Detections of
both paths are checked identical (category, conf to 3 decimals, bbox to 4).

    python bench/bench_detect.py [--weights ../shared/data/weights/yolov5n.pt] [--size 640]
        [--repeat 4] [--batch-size 8] [--workers 2]

Prints images/s of both and their ratio. Numbers are only comparable on one machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=SHARED / "weights" / "yolov5n.pt")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--repeat", type=int, default=4, help="times each shared image is used")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")

    import torch

    from wildspace.detect.base import detect_images
    from wildspace.formats.megadetector import image_to_dict
    from wildspace.media.images import load_image
    from wildspace.pipeline import detect_files
    from wildspace.services import DetectorService

    images = sorted(p for d in ("megadetector-test", "ena24-small")
                    for p in (SHARED / "camera-trap" / d).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    files = [(p, f"{i}/{p.name}") for i in range(args.repeat) for p in images]
    det = DetectorService().load(weights=args.weights, image_size=args.size)
    print(f"{len(files)} images, {args.weights.name} at {args.size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    t0 = time.perf_counter()
    reference = {}
    for path, name in files:
        (dets,) = detect_images(det, [load_image(path)], 0.005)
        reference[name] = dets
    t_ref = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours = {r.file: r for r in detect_files(det, files, 0.005, batch_size=args.batch_size, workers=args.workers)}
    t_ours = time.perf_counter() - t0

    from wildspace.types import ImageResult

    same = sum(image_to_dict(ImageResult(n, d)) == image_to_dict(ours[n]) for n, d in reference.items())
    n = len(files)
    print(f"reference per-image path: {n / t_ref:6.2f} images/s ({t_ref:.1f} s)")
    print(f"wildspace batch pipeline: {n / t_ours:6.2f} images/s ({t_ours:.1f} s)")
    print(f"ratio (wildspace / reference): {t_ref / t_ours:.2f}x; identical detections: {same}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
