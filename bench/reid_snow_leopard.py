"""Top-1 accuracy of the weight-free local-feature matcher on the snow-leopard dev set.

Usage: python bench/reid_snow_leopard.py [DATA_DIR] [--cache FEATURES.npz]

Prints leave-one-image-out and leave-one-event-out (event = station + date) top-1. Top-1 per
query: an identity's score is the max over its non-excluded gallery images; the query counts as
correct only when its own identity scores strictly higher than every other one (ties and
all-zero rows are misses).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from wildspace.media.images import load_image
from wildspace.reid.local_features import LocalFeatureConfig, LocalFeatures, extract, score_matrix

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "snow-leopard-dev"


def top1(scores: np.ndarray, ids: np.ndarray, exclude: np.ndarray) -> float:
    hits = 0
    for i in range(len(ids)):
        s = np.where(exclude[i], -1.0, scores[i])
        per_id = {k: s[ids == k].max() for k in np.unique(ids)}
        own = per_id.pop(ids[i])
        hits += bool(own > 0 and all(v < own for v in per_id.values()))
    return hits / len(ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a LocalFeatureConfig field (scoring fields only with --cache)")
    ap.add_argument("--cache", type=Path, help="npz file to store/reuse extracted features")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.data / "identities.csv")))
    ids = np.array([r["identity"] for r in rows])
    events = np.array([r["station"] + "/" + r["date"] for r in rows])
    config = LocalFeatureConfig(**{k: type(getattr(LocalFeatureConfig(), k))(v)
                                   for k, v in (s.split("=", 1) for s in args.set)})
    t0 = time.perf_counter()
    if args.cache and args.cache.exists():
        z = np.load(args.cache)
        feats = [LocalFeatures.from_arrays({k: z[f"{i}_{k}"] for k in ("xy", "descriptors", "size")})
                 for i in range(len(rows))]
    else:
        feats = [extract(load_image(args.data / r["file"]), config) for r in rows]
        if args.cache:
            np.savez(args.cache, **{f"{i}_{k}": v for i, f in enumerate(feats)
                                    for k, v in f.to_arrays().items()})
    t1 = time.perf_counter()
    out = {}
    for name, exclude in (("leave-one-image-out", np.eye(len(rows), dtype=bool)),
                          ("leave-one-event-out", events[:, None] == events[None, :])):
        t = time.perf_counter()
        scores = score_matrix(feats, feats, config, exclude=exclude)
        out[name] = (top1(scores, ids, exclude), time.perf_counter() - t)
    print(f"{len(rows)} images, {len(set(ids))} identities, {len(set(events))} events; "
          f"extract {t1 - t0:.0f}s")
    for name, (acc, secs) in out.items():
        print(f"{name:>20} top-1 {acc:.3f}  (scoring {secs:.0f}s)")


if __name__ == "__main__":
    main()
