"""Review tab: how long a threshold change takes to update the view on a 500-image result.

The result is synthetic in its boxes (40 per image, most far below any threshold, as a run
that keeps MegaDetector's 0.005 floor has) and real in its images (the shared camera-trap
JPEGs, 1280x720 to 5152x3968, reused). A threshold change re-filters all 500 images, keeps
the image shown and redraws it from the cached thumbnail: no model runs. Printed: median and
worst time per change, the ratio to a one-second budget, and (for comparison) the time to
move to an image not seen before (decoding its JPEG).

    .venv/bin/python bench/bench_review.py [--images 500] [--changes 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import camera_trap_images, machine, setup_env

setup_env()

from wildspace.formats.megadetector import write_results  # noqa: E402
from wildspace.review.session import ReviewService  # noqa: E402
from wildspace.review.sources import MANIFEST, Sources  # noqa: E402
from wildspace.review.store import ReviewStores  # noqa: E402
from wildspace.review.view import Filters  # noqa: E402
from wildspace.runs.disk import owner_tag  # noqa: E402


def make_source(root: Path, n: int, boxes: int, rng: np.random.Generator) -> str:
    images = camera_trap_images()
    run = root / "review" / "run-bench"
    run.mkdir(parents=True)
    docs, files = [], {}
    for i in range(n):
        name = f"cam{i % 5}/img{i:04d}.jpg"
        files[name] = str(images[i % len(images)])
        confs = np.sort(rng.beta(0.3, 3.0, boxes))[::-1]
        dets = []
        for c in confs:
            x, y = rng.uniform(0, 0.8, 2)
            w, h = rng.uniform(0.03, 0.2, 2)
            dets.append({"category": str(int(rng.integers(1, 4))), "conf": round(float(max(c, 0.005)), 3),
                         "bbox": [round(float(v), 4) for v in (x, y, w, h)]})
        docs.append({"file": name, "detections": dets})
    write_results({"info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
                   "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"}, "images": docs},
                  run / "results.json")
    (run / MANIFEST).write_text(json.dumps({"owner": owner_tag("bench"), "kind": "upload", "created": "",
                                            "title": "bench", "md": "results.json", "files": files}))
    return "run:review/run-bench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--boxes", type=int, default=40)
    ap.add_argument("--changes", type=int, default=40)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sid = make_source(root, args.images, args.boxes, rng)
        service = ReviewService(Sources({"review": root / "review"}), ReviewStores(root / "home"),
                                root / "views", 200_000_000)
        t = time.perf_counter()
        service.open("bench", "s", sid, 0.2)
        opened = time.perf_counter() - t
        thresholds = [round(float(v), 3) for v in rng.uniform(0.01, 0.9, args.changes)]
        filters = [Filters(), Filters(category="animal"), Filters(uncertain_first=True), Filters(band="low (0.1–0.4)")]
        cold, warm = [], []
        for k, thr in enumerate(thresholds):
            if k % 10 == 0:  # now and then another image (its first view decodes it; not timed here)
                service.move("bench", "s", 7)
            t = time.perf_counter()
            service.set_view("bench", "s", thr, filters[k % len(filters)])
            warm.append(time.perf_counter() - t)
        for _ in range(5):
            t = time.perf_counter()
            service.move("bench", "s", 13)  # an image not seen yet: decoded, thumbnailed, drawn
            cold.append(time.perf_counter() - t)
        service.stores.close()
    med, worst = statistics.median(warm), max(warm)
    print(f"machine: {machine()}")
    print(f"{args.images} images x {args.boxes} boxes; open (parse + fold): {opened * 1000:.0f} ms")
    print(f"threshold/filter change, image cached: median {med * 1000:.1f} ms, worst {worst * 1000:.1f} ms "
          f"({args.changes} changes) -> {1.0 / worst:.0f}x inside a 1 s budget")
    print(f"next image never seen before (decode the JPEG): median {statistics.median(cold) * 1000:.0f} ms, "
          f"worst {max(cold) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
