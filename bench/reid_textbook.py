"""A textbook weight-free matcher as a cross-check of ``wildspace.reid`` on the snow-leopard dev set.

Deliberately independent of the project's matcher: SIFT keypoints (CLAHE 2) on each image's
chip (``--boxes``, the ``bench/reid_ablation.py`` format; margin 0.1, long side ``--side``),
Lowe's ratio test (0.8) image pair by image pair, and the inliers of a RANSAC similarity
transform as the pair's score; an animal scores its best image. Leave-one-encounter-out
(``--event-gap`` minutes at one station): a query never sees images of its own encounter.
``--grabcut`` keeps only keypoints inside OpenCV's GrabCut foreground, seeded with the box.

Prints top-1 / top-2 and, per identity, the median best inliers of the same animal from another
encounter against the best of any other animal: what tells whether coat or scenery wins.

    python bench/reid_textbook.py --boxes BOXES.json [--side 600] [--grabcut]
"""

from __future__ import annotations

import argparse
import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from wildspace.reid.events import event_labels

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "snow-leopard-dev"
MARGIN = 0.1


def chip(bgr: np.ndarray, box, side: int) -> np.ndarray:
    import cv2

    h, w = bgr.shape[:2]
    band = int(0.06 * h)  # caption bars
    bgr = bgr.copy()
    bgr[:band], bgr[h - band:] = 0, 0
    if box is not None:
        x, y, bw, bh = box
        x0, y0 = max(0, int((x - MARGIN * bw) * w)), max(0, int((y - MARGIN * bh) * h))
        x1, y1 = min(w, int((x + bw * (1 + MARGIN)) * w)), min(h, int((y + bh * (1 + MARGIN)) * h))
        bgr = bgr[y0:y1, x0:x1]
    s = side / max(bgr.shape[:2])
    return cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def foreground(bgr: np.ndarray) -> np.ndarray:
    """GrabCut foreground (dilated 9 px) inside the box that the margin surrounds."""
    import cv2

    h, w = bgr.shape[:2]
    k = 1 + 2 * MARGIN
    rect = (int(w * MARGIN / k), int(h * MARGIN / k), max(1, int(w / k)), max(1, int(h / k)))
    mask = np.zeros((h, w), np.uint8)
    try:
        cv2.grabCut(bgr, mask, rect, np.zeros((1, 65)), np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return np.full((h, w), 255, np.uint8)
    fg = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    fg = cv2.dilate(fg, np.ones((9, 9), np.uint8))
    return fg if fg.mean() >= 255 * 0.05 else np.full((h, w), 255, np.uint8)


def features(path: Path, box, side: int, grabcut: bool):
    import cv2

    img = chip(cv2.imread(str(path)), box, side)
    mask = foreground(img) if grabcut else None
    gray = cv2.createCLAHE(2.0, (8, 8)).apply(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    kps, desc = cv2.SIFT.create(nfeatures=3000).detectAndCompute(gray, mask)
    if desc is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    root = np.sqrt(desc / (desc.sum(axis=1, keepdims=True) + 1e-7)).astype(np.float32)
    return np.float32([k.pt for k in kps]), root


def pair_inliers(a, b) -> int:
    import cv2

    (pa, da), (pb, db) = a, b
    if len(da) < 5 or len(db) < 5:
        return 0
    good = [m for m, n in cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2) if m.distance < 0.8 * n.distance]
    if len(good) < 6:
        return 0
    _, inl = cv2.estimateAffinePartial2D(pa[[g.queryIdx for g in good]], pb[[g.trainIdx for g in good]],
                                         method=cv2.RANSAC, ransacReprojThreshold=15)
    return int(inl.sum()) if inl is not None else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEV)
    ap.add_argument("--boxes", type=Path, help="without it whole frames are matched")
    ap.add_argument("--side", type=int, default=600)
    ap.add_argument("--grabcut", action="store_true")
    ap.add_argument("--event-gap", type=float, default=30.0)
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.data / "identities.csv")))
    boxes = json.loads(args.boxes.read_text()) if args.boxes else {}
    ids = np.array([r["identity"] for r in rows])
    events = np.array(event_labels([r["station"] for r in rows],
                                   [f"{r['date']} {r['time']}" for r in rows], args.event_gap))
    n = len(rows)

    def feat(r):
        found = boxes.get(r["file"]) or []
        return features(args.data / r["file"], found[0][2] if found else None, args.side, args.grabcut)

    def row(i):
        return [pair_inliers(feats[i], feats[j]) if events[i] != events[j] else -1 for j in range(n)]

    with ThreadPoolExecutor(2) as pool:  # OpenCV releases the GIL
        feats = list(pool.map(feat, rows))
        scores = np.array(list(pool.map(row, range(n))), dtype=float)
    ranks, own_best, other_best = [], [], []
    for q in range(n):
        best: dict[str, float] = {}
        for j in np.nonzero(events != events[q])[0]:
            best[ids[j]] = max(best.get(ids[j], 0.0), scores[q, j])
        own = best.get(ids[q], 0.0)
        others = [v for k, v in best.items() if k != ids[q]]
        ranks.append(1 + sum(v >= own for v in others) if own > 0 else len(best) + 1)
        own_best.append(own)
        other_best.append(max(others, default=0.0))
    ranks_a = np.array(ranks)
    print(f"{n} images, {len(set(ids))} identities, {len(set(events))} encounters; "
          f"{'chips' if boxes else 'frames'}{' + grabcut' if args.grabcut else ''}, {args.side} px")
    print(f"LOEO top1 {np.mean(ranks_a <= 1):.3f} top2 {np.mean(ranks_a <= 2):.3f}")
    for cat in sorted(set(ids)):
        sel = ids == cat
        print(f"  {cat}: top1 {np.mean(ranks_a[sel] <= 1):.2f}; median best inliers, same animal "
              f"{np.median(np.array(own_best)[sel]):g} vs other animals {np.median(np.array(other_best)[sel]):g}")


if __name__ == "__main__":
    main()
