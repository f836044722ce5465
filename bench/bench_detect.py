"""Detection throughput: wildspace's batch pipeline vs the reference per-image path.

Same weights, same images (the 37 shared camera-trap JPEGs repeated), same inference size,
all measured in one run. The reference path is what Pytorch-Wildlife-style code runs:

- legacy YOLOv5 checkpoints (MDv5): for each file decode -> letterbox -> forward (batch of
  1) -> NMS, nothing overlapped, eager PyTorch;
- ultralytics models (MDv6, MDv1000): ultralytics' predictor called once per file path.

wildspace's pipeline (``detect_files``: threaded decode/letterbox ahead of the network,
batches grouped by letterbox shape, streamed results) runs with each ``--backends`` entry,
and with ``--fast-decode`` also with reduced-size JPEG decoding. Detections are compared
with the reference image by image: *identical* (MegaDetector JSON precision) and *within
tolerance* (:mod:`wildspace.detect.parity`).

    python bench/bench_detect.py --weights ../shared/data/weights/yolov5n.pt --sizes 640 1280
    python bench/bench_detect.py --ultralytics yolov9c.yaml --sizes 640 --repeat 1

Prints images/s and ratios. Numbers are only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SCRATCH,
    SHARED,
    calibrated_ultralytics_checkpoint,
    camera_trap_images,
    load_average,
    machine,
    setup_env,
)


def reference_legacy(det, files, threshold):
    from wildspace.detect.base import detect_images
    from wildspace.media.images import load_image

    return {name: detect_images(det, [load_image(path)], threshold)[0] for path, name in files}


def reference_predictor(det, files, threshold):
    from wildspace.detect.base import xyxy_to_detections

    out = {}
    for path, name in files:
        (r,) = det.model.predict(str(path), imgsz=det.info.input_size, conf=threshold, verbose=False)
        b = r.boxes
        out[name] = xyxy_to_detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy(),
                                       r.orig_shape, threshold)
    return out


def warm_up(detectors, images) -> None:
    """One untimed pass per detector over every distinct letterbox shape (primitive caches)."""
    import numpy as np
    from PIL import Image

    shapes = {}
    for p in images:
        with Image.open(p) as im:
            shapes.setdefault(im.size, im.size)
    for det in detectors:
        for w, h in shapes:
            det.run([det.prepare(np.zeros((h, w, 3), np.uint8))], 0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--weights", type=Path, default=SHARED / "weights" / "yolov5n.pt")
    src.add_argument("--ultralytics", metavar="YAML", help="an ultralytics architecture, e.g. yolov9c.yaml "
                     "(random weights with calibrated BatchNorm, see bench/common.py)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[640, 1280])
    ap.add_argument("--repeat", type=int, default=4, help="times each of the 37 shared images is used")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    ap.add_argument("--fast-decode", action="store_true", help="also time onnx + reduced-size decoding")
    args = ap.parse_args()
    setup_env()

    import torch

    from wildspace.detect.factory import build_detector
    from wildspace.detect.parity import box_agreement, detections_within_tolerance, identical_detections
    from wildspace.detect.pipeline import detect_files

    images = camera_trap_images()
    files = [(p, f"{i}/{p.name}") for i in range(args.repeat) for p in images]
    weights = args.weights
    if args.ultralytics:
        weights = calibrated_ultralytics_checkpoint(
            args.ultralytics, SCRATCH / f"calibrated-{Path(args.ultralytics).stem}.pt", images)
    reference = reference_predictor if args.ultralytics else reference_legacy
    ref_name = "ultralytics predictor per file" if args.ultralytics else "per-image decode/letterbox/forward/NMS loop"
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{len(files)} images, {weights.name}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"batch {args.batch_size}, {args.workers} decode threads, threshold {args.threshold}", flush=True)
    export_dir = SCRATCH / "home" / "exported"
    runs = [(b, False) for b in args.backends] + ([("onnx", True)] if args.fast_decode else [])
    for size in args.sizes:
        dets = {b: build_detector(weights, input_size=size, backend=b, export_dir=export_dir)
                for b in {b for b, _ in runs} | {"torch"}}
        warm_up(dets.values(), images)
        t0 = time.perf_counter()
        ref = reference(dets["torch"], files, args.threshold)
        t_ref = time.perf_counter() - t0
        n = len(files)
        print(f"\n[{size} px] reference ({ref_name}): {n / t_ref:6.2f} images/s ({t_ref:.1f} s)", flush=True)
        for backend, fast in runs:
            t0 = time.perf_counter()
            ours = {r.file: r.detections for r in detect_files(
                dets[backend], files, args.threshold, batch_size=args.batch_size,
                workers=args.workers, fast_decode=fast)}
            t = time.perf_counter() - t0
            same = sum(identical_detections(ref[k], ours[k] or ()) for k in ref)
            close = sum(detections_within_tolerance(ref[k], ours[k] or (), args.threshold) for k in ref)
            agree = [box_agreement(ref[k], ours[k] or ()) for k in ref]
            matched, total, extra = (sum(a[i] for a in agree) for i in range(3))
            label = f"wildspace pipeline, {backend}{' + fast decode' if fast else ''}"
            print(f"[{size} px] {label:<38} {n / t:6.2f} images/s ({t:.1f} s)  ratio {t_ref / t:5.2f}x  "
                  f"identical {same}/{n}  within tolerance {close}/{n}  "
                  f"boxes >= 0.2 matched {matched}/{total}, extra {extra}", flush=True)
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
