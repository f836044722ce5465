"""Pytorch-Wildlife's batch detection as a bench peer (run by ``bench_peers.py`` with the
bench-only venv's python, never imported by wildspace): ``MegaDetectorV6`` on a local
ultralytics checkpoint, ``batch_image_detection`` over a folder, written as MegaDetector batch
JSON so that ``bench_peers.py`` can compare its boxes with wildspace's.

    PEER_PYTHON bench/peer_pytorchwildlife.py WEIGHTS FOLDER OUT.json --image-size 640 --threshold 0.005
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--image-size", type=int, default=1280)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--batch-size", type=int, default=16)  # Pytorch-Wildlife's default
    args = ap.parse_args()
    from PytorchWildlife.models import detection as pw_detection

    model = pw_detection.MegaDetectorV6(weights=args.weights, device="cpu", pretrained=False,
                                        version="MDV6-yolov9-c")
    model.predictor.args.imgsz = args.image_size  # MegaDetectorV6 fixes 1280; the bench compares one size
    results = model.batch_image_detection(args.folder, batch_size=args.batch_size,
                                          det_conf_thres=args.threshold)
    images = []
    for r in results:
        dets = r["detections"]
        rows = []
        for (x1, y1, x2, y2), conf, cls in zip(r["normalized_coords"], dets.confidence, dets.class_id):
            rows.append({"category": str(int(cls) + 1), "conf": round(float(conf), 3),
                         "bbox": [round(float(v), 4) for v in (x1, y1, x2 - x1, y2 - y1)]})
        images.append({"file": Path(r["img_id"]).name, "detections": rows})
    Path(args.out).write_text(json.dumps({"images": images}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
