"""Ablation of the learned matcher (ALIKED + LightGlue) on the snow-leopard dev set.

Usage: WILDSPACE_HOME=HOME python bench/reid_lightglue.py [--data DIR] [--event-gap 30]
           [--matches FILE.npz] [--side 1024] [--keypoints 1024]

HOME must hold the two weight files (``python -m wildspace models import aliked-n16.pth --as
aliked-n16``, ``… aliked_lightglue.pth --as lightglue-aliked``). LightGlue runs once per image
pair (every pair, so leave-one-image-out is scored too) and its raw matches are kept in
``--matches``; a rerun only re-scores. Each variant's pair scores go through the same
evaluation as ``reid evaluate --method lightglue`` (``wildspace.reid.evaluate``), leave-one-
encounter-out (LOEO) first, then leave-one-image-out (LOIO).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wildspace.reid.build import build_gallery, read_identity_table  # noqa: E402
from wildspace.reid.evaluate import exclusion_mask, leave_one_out  # noqa: E402
from wildspace.reid.events import gallery_encounters  # noqa: E402
from wildspace.reid.learned import LearnedConfig, load_learned_matcher, moved_scene, static_matches  # noqa: E402
from wildspace.reid.pooling import pooled_scores  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "snow-leopard-dev"


def raw_matches(matcher, feats, path: Path) -> dict:
    """``{(i, j): (idx, conf)}`` for every pair ``i < j``, from ``path`` when it is complete."""
    n = len(feats)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if path.is_file():
        with np.load(path) as z:
            if int(z["n"]) == n:
                off, idx, conf = z["offsets"], z["idx"], z["conf"]
                return {p: (idx[off[k]:off[k + 1]], conf[off[k]:off[k + 1]]) for k, p in enumerate(pairs)}
    out = {}
    t0 = time.perf_counter()
    for k, (i, j) in enumerate(pairs):
        out[(i, j)] = matcher.matches(feats[i], feats[j])
        if (k + 1) % 100 == 0:
            print(f"  {k + 1}/{len(pairs)} pairs, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    off = np.cumsum([0] + [len(out[p][0]) for p in pairs])
    np.savez(path, n=n, offsets=off,
             idx=np.concatenate([out[p][0] for p in pairs]).reshape(-1, 2),
             conf=np.concatenate([out[p][1] for p in pairs]))
    return out


def scores(feats, stations, raw, variant: dict) -> np.ndarray:
    n = len(feats)
    s = np.full((n, n), -np.inf)
    for (i, j), (idx, conf) in raw.items():
        a, b = feats[i], feats[j]
        keep = np.ones(len(idx), bool)
        if len(idx) and stations[i] and stations[i] == stations[j] and a.size == b.size:
            k0, k1 = a.keypoints[idx[:, 0]], b.keypoints[idx[:, 1]]
            keep &= ~static_matches(k0, k1, a.size, variant.get("static", 0.01))
            if variant.get("moved"):
                keep &= ~moved_scene(k0, k1, a.size)
        v = float(conf[keep].sum()) if variant.get("conf") else float(keep.sum())
        s[i, j] = s[j, i] = v
    return s


def top_k(gallery, groups, sim, pooling: str) -> tuple[float, float]:
    exclude = exclusion_mask(gallery, groups)
    ids = gallery.identities
    labels, best = pooled_scores(pooling, np.where(exclude, -np.inf, sim), ids,
                                 gallery_events=groups, compared=~exclude)
    ranks = []
    for q, t in enumerate(ids):
        k = int(np.nonzero(labels == t)[0][0])
        own = best[q, k]
        ranks.append(len(labels) if not np.isfinite(own) or own <= 0
                     else 1 + int(np.sum(np.delete(best[q], k) >= own)))
    r = np.array(ranks)
    return float(np.mean(r <= 1)), float(np.mean(r <= 2))


VARIANTS = {
    "count, static 0.01 (the default)": {"static": 0.01},
    "count, no static removal": {"static": 0.0},
    "count, static 0.02": {"static": 0.02},
    "count, static 0.01 + moved camera": {"static": 0.01, "moved": True},
    "confidence sum, static 0.01": {"static": 0.01, "conf": True},
    "confidence sum, static 0.01 + moved camera": {"static": 0.01, "moved": True, "conf": True},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--event-gap", type=float, default=30.0)
    ap.add_argument("--matches", type=Path, default=Path("/tmp/wildspace-lightglue-matches.npz"))
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--keypoints", type=int, default=1024)
    args = ap.parse_args()
    matcher = load_learned_matcher(config=LearnedConfig(max_side=args.side, keypoints=args.keypoints))
    t0 = time.perf_counter()
    gallery, failures = build_gallery(args.data, read_identity_table(args.data / "identities.csv"),
                                      "dev", local=False, learned=matcher)
    print(f"{len(gallery)} images ({len(failures)} failed), features in {time.perf_counter() - t0:.0f} s "
          f"({matcher.cache_hits} from the cache)")
    groups, left_out = gallery_encounters(gallery, args.event_gap)
    print(left_out)
    feats = gallery.learned
    stations = [r.location for r in gallery.records]
    t0 = time.perf_counter()
    raw = raw_matches(matcher, feats, args.matches)
    print(f"{len(raw)} pairs matched in {time.perf_counter() - t0:.0f} s ({matcher.pairs_run} run now)")
    print("| variant | pooling | LOEO top1 | LOEO top2 | LOIO top1 | LOIO top2 | LOEO BAKS | brier_top |")
    print("|---|---|---|---|---|---|---|---|")
    for name, variant in VARIANTS.items():
        sim = scores(feats, stations, raw, variant)
        for pooling in ("max", "events"):
            e1, e2 = top_k(gallery, groups, sim, pooling)
            i1, i2 = top_k(gallery, None, sim, pooling)
            full = leave_one_out(gallery, "lightglue", groups, pooling=pooling, scores=sim)
            if abs(full["top1"] - e1) > 1e-9:
                print(f"  (reid evaluate's tie rule gives LOEO top1 {full['top1']:.3f})")
            print(f"| {name} | {pooling} | {e1:.3f} | {e2:.3f} | {i1:.3f} | {i2:.3f} | "
                  f"{full['baks']:.3f} | {full['brier_top']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
