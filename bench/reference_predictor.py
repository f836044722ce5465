"""The reference per-image path for ultralytics models, as Pytorch-Wildlife runs it: load the
model with ultralytics, call its predictor once per file path, write MegaDetector-style JSON.

    python bench/reference_predictor.py --weights MODEL.pt --image-size 640 --threshold 0.005 \
        -o ref.json IMAGE [IMAGE ...]

Used by ``bench/bench_cli.py`` as the command wildspace's ``detect`` is timed against. Only
ultralytics is imported (no wildspace code on this path).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--image-size", type=int, default=640)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("images", nargs="+", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    model = YOLO(str(args.weights), task="detect")
    out = []
    for path in args.images:
        (r,) = model.predict(str(path), imgsz=args.image_size, conf=args.threshold, verbose=False)
        h, w = r.orig_shape
        dets = []
        for (x1, y1, x2, y2), conf, cls in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist()):
            dets.append({"category": str(int(cls) + 1), "conf": round(conf, 3),
                         "bbox": [round(v, 4) for v in (x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h)]})
        dets.sort(key=lambda d: -d["conf"])
        out.append({"file": path.name, "detections": dets})
    args.output.write_text(json.dumps({"images": out}))
    print(f"{len(out)} images -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
