"""The reference per-image path for legacy YOLOv5 checkpoints (MDv5), as Pytorch-Wildlife's
batch loop runs it: for each file decode -> letterbox -> forward (batch of 1, eager
PyTorch) -> NMS, nothing overlapped; then MegaDetector JSON.

    python bench/reference_loop.py --weights MODEL.pt --image-size 1280 --threshold 0.005 \
        -o ref.json IMAGE [IMAGE ...]

The network, letterbox and NMS are wildspace's reference-parity implementations (checked
against the YOLOv5 package's golden output in tests/detect/test_yolov5_parity.py); only the
loop is the reference's. Used by ``bench/bench_cli.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--image-size", type=int, default=1280)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("images", nargs="+", type=Path)
    args = ap.parse_args()
    from wildspace.detect.factory import build_detector
    from wildspace.formats.megadetector import build_results, detector_metadata, write_results
    from wildspace.media.images import load_image
    from wildspace.types import ImageResult

    det = build_detector(args.weights, input_size=args.image_size, backend="torch")
    results = []
    for path in args.images:
        image = load_image(path)
        (dets,) = det.run([det.prepare(image)], args.threshold)
        h, w = image.shape[:2]
        results.append(ImageResult(path.name, dets, width=w, height=h))
    write_results(build_results(results, det.info.labels, args.weights.name,
                                detector_metadata(det.info, args.threshold)), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
