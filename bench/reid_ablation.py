"""Ablation of the weight-free matcher on the snow-leopard dev set, leave-one-event-out.

Usage: python bench/reid_ablation.py [--data DIR] [--boxes BOXES.json] [--cache DIR]
                                     [--variant NAME ...] [--event-gap MIN]
                                     [--pooling max,events2,events3,keypoints,lnbnn]
                                     [--lnbnn-set FIELD=VALUE ...] [--query-encounter]

Every variant is scored with the query's whole encounter left out (events = same station
within ``--event-gap`` minutes, see ``wildspace.reid.events``) and, for reference, with only the
query image left out. Features are cached per image by content hash (``--cache``), so a rerun
only pays for scoring. ``--boxes`` is a JSON file ``{file: [[label, conf, [x, y, w, h]], ...]}``
of detector boxes (e.g. from ``coco-yolov5n``); without it the chip variants are skipped.

``lnbnn`` is HotSpotter's scoring (:mod:`wildspace.reid.lnbnn`: every query descriptor against
all gallery descriptors at once, the left-out encounter's descriptors not in the index); its
neighbour search (LOEO and LOIO together, mirrored queries included) is the slow part and is
done once per frames/chips mode; ``--lnbnn-set`` changes :class:`LnbnnConfig` fields.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wildspace.media.images import load_image
from wildspace.reid.events import event_labels
from wildspace.reid.feature_cache import FeatureCache, extract_many
from wildspace.reid.lnbnn import LnbnnConfig, lnbnn_scores, neighbour_sets
from wildspace.reid.local_features import LocalFeatureConfig, score_matrix
from wildspace.reid.pooling import pooled_scores

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "snow-leopard-dev"


def ranks_from(labels, scores, ids):
    out = []
    for q, t in enumerate(ids):
        k = int(np.nonzero(labels == t)[0][0])
        own = scores[q, k]
        if not np.isfinite(own) or own <= 0:
            out.append(len(labels))
            continue
        out.append(1 + int(np.sum(np.delete(scores[q], k) >= own)))
    return np.array(out)


def encounter_query(scores: np.ndarray, events: list) -> np.ndarray:
    """Each query row replaced by the per-animal max over the rows of its encounter: the
    answer a user gets who queries with every frame of the burst (they share the left-out
    set, so the rows are comparable)."""
    out = scores.copy()
    ev = np.asarray(events, dtype=object)
    for e in set(events):
        rows = np.nonzero(ev == e)[0]
        out[rows] = scores[rows].max(axis=0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--boxes", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/wildspace-reid-cache"))
    ap.add_argument("--variant", action="append",
                    help="frames|chips, optionally +mirror, +cross (e.g. chips+mirror+cross)")
    ap.add_argument("--min-conf", type=float, default=0.2)
    ap.add_argument("--event-gap", type=float, default=60.0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--pooling", default="max,events2,events3,keypoints,lnbnn",
                    help="comma separated: max, events2, events3, keypoints, lnbnn")
    ap.add_argument("--lnbnn-set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--query-encounter", action="store_true",
                    help="also score LOEO with each query pooled over its whole encounter (LOEO-encq)")
    args = ap.parse_args()
    pools = [x.strip() for x in args.pooling.split(",") if x.strip()]
    lnbnn_cfg = LnbnnConfig(**{k: type(getattr(LnbnnConfig(), k))(v)
                               for k, v in (s.split("=", 1) for s in args.lnbnn_set)})
    lnbnn_cfg.check()
    rows = list(csv.DictReader(open(args.data / "identities.csv")))
    ids = np.array([r["identity"] for r in rows])
    stations = np.array([r.get("station", "") for r in rows], dtype=object)
    events = np.array(event_labels([r.get("station", "") for r in rows],
                                   [f"{r.get('date', '')} {r.get('time', '')}".strip() for r in rows],
                                   args.event_gap))
    base = LocalFeatureConfig(**{k: type(getattr(LocalFeatureConfig(), k))(v)
                                 for k, v in (s.split("=", 1) for s in args.set)})
    cache = FeatureCache(args.cache)
    images = [load_image(args.data / r["file"]) for r in rows]
    boxes = json.loads(args.boxes.read_text()) if args.boxes else None

    def chip_boxes():
        out = []
        for r in rows:
            found = [b for b in (boxes or {}).get(r["file"], []) if b[1] >= args.min_conf]
            best = max(found, key=lambda b: b[1]) if found else None
            # a poor box (tiny, or nearly the whole frame) falls back to the frame
            ok = best is not None and 0.01 <= best[2][2] * best[2][3] <= 0.9
            out.append(tuple(best[2]) if ok else None)
        return out

    variants = args.variant or ["frames", "frames+mirror"] + (["chips", "chips+mirror"] if boxes else [])
    print(f"{len(rows)} images, {len(set(ids))} identities, {len(set(events))} events "
          f"(gap {args.event_gap:g} min)")
    loeo = events[:, None] == events[None, :]
    loio = np.eye(len(rows), dtype=bool)
    found: dict = {}  # frames/chips -> LNBNN neighbours for (LOEO, LOIO)
    for variant in variants:
        t0 = time.perf_counter()
        bb = chip_boxes() if variant.startswith("chips") else None
        feats = extract_many(images, base, bb, cache=cache)
        results = {}
        cfg = replace(base, cross_k=3) if "cross" in variant else base
        extra = {"gallery_ids": ids, "gallery_stations": stations}
        if "lnbnn" in pools:
            mfeats = extract_many(images, base, bb, mirror=True, cache=cache)
            mode = "chips" if bb else "frames"
            if mode not in found:
                found[mode] = neighbour_sets(feats, feats, [loeo, loio], lnbnn_cfg.depth, mirrored=mfeats)
            lcfg = replace(lnbnn_cfg, cross_k=3) if "cross" in variant else lnbnn_cfg
            for name, exclude, nb in (("LOEO", loeo, found[mode][0]), ("LOIO", loio, found[mode][1])):
                res = lnbnn_scores(feats, feats, ids, exclude, lcfg, gallery_stations=stations,
                                   mirrored=mfeats if "mirror" in variant else None, found=nb)
                r = ranks_from(res.labels, res.names, ids)
                results[(name, "lnbnn")] = (float(np.mean(r <= 1)), float(np.mean(r <= 2)))
                if args.query_encounter and name == "LOEO":
                    r = ranks_from(res.labels, encounter_query(res.names, events), ids)
                    results[("LOEO-encq", "lnbnn")] = (float(np.mean(r <= 1)), float(np.mean(r <= 2)))
        image_pools = [x for x in pools if x != "lnbnn"]
        for name, exclude in (("LOEO", loeo), ("LOIO", loio)) if image_pools else ():
            sim, votes = score_matrix(feats, feats, cfg, exclude=exclude, return_votes=True, **extra)
            sim = sim.astype(np.float64)
            if "mirror" in variant:
                mfeats = extract_many(images, base, bb, mirror=True, cache=cache)
                msim, mvotes = score_matrix(mfeats, feats, cfg, exclude=exclude, return_votes=True,
                                            **extra)
                sim = np.maximum(sim, msim)
                votes = [(np.concatenate([v[0], m[0] + len(f.xy)]), np.concatenate([v[1], m[1]]),
                          np.concatenate([v[2], m[2]])) for v, m, f in zip(votes, mvotes, feats)]
            sim[exclude] = -np.inf
            for pool, kw in (("max", {}), ("events2", {"top": 2}), ("events3", {"top": 3}),
                             ("keypoints", {})):
                if pool not in image_pools:
                    continue
                mode = "events" if pool.startswith("events") else pool
                labels, scores = pooled_scores(mode, sim, ids, votes=votes, gallery_events=events, **kw)
                r = ranks_from(labels, scores, ids)
                results[(name, pool)] = (float(np.mean(r <= 1)), float(np.mean(r <= 2)))
                if args.query_encounter and name == "LOEO":
                    r = ranks_from(labels, encounter_query(scores, events), ids)
                    results[("LOEO-encq", pool)] = (float(np.mean(r <= 1)), float(np.mean(r <= 2)))
        secs = time.perf_counter() - t0
        n_chips = sum(b is not None for b in bb) if bb else 0
        for (name, pool), (t1, t2) in sorted(results.items()):
            print(f"{variant:14s} chips={n_chips:2d} {name} pool={pool:9s} top1 {t1:.3f} top2 {t2:.3f}")
        print(f"  ({secs:.0f}s, cache hits {cache.hits} misses {cache.misses})", flush=True)


if __name__ == "__main__":
    main()
