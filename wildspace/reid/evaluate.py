"""Leave-one-out evaluation of a re-ID method on an identity-labelled folder.

By default every query leaves out its **whole encounter** (same station within an event gap,
:mod:`wildspace.reid.events`) when the table has stations and dates: bursts of near-identical
frames make leave-one-image-out optimistic, and a ranger's question is "is this the cat from
last month?". Without stations/dates only the query image is left out, and the result says
so. Images whose identity has no other usable image are *unknown* queries (``baus`` only).

``lightglue`` (learned keypoints, :mod:`wildspace.reid.learned`) is scored outside the gallery
matcher: the caller passes its symmetric pair-score matrix (``scores``), every pair scored
once, and both evaluations slice it.

The open-set decision for each query uses a calibration fitted **without that query's
identity** (leave-one-identity-out) on the same cross-encounter scores, so ``baks``/``baus``,
the Brier score and the reliability curve are not fitted on the answers they score. The
``threshold`` reported is the one fitted on all queries, which is what a gallery built from
the same images would use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildspace.errors import UsageError
from wildspace.reid.calibration import CalibrationError, brier_score, fit_calibration, reliability_curve
from wildspace.reid.gallery import GalleryData
from wildspace.reid.matching import Matcher, calibrate_identity_rows, flank_mask
from wildspace.reid.metrics import evaluate
from wildspace.reid.pooling import pooled_scores

PRECOMPUTED = ("lightglue",)  # methods whose pair scores come in as a matrix
LOG_SCALE = ("local", "lightglue")  # match counts: calibrated on a log scale


def _precomputed(method: str, scores, shape: tuple[int, int], pooling: str) -> np.ndarray:
    if scores is None:
        raise UsageError(f"method '{method}' needs its pair scores (scores=)")
    scores = np.array(scores, dtype=np.float64)
    if scores.shape != shape:
        raise UsageError(f"scores are {scores.shape}, the gallery needs {shape}")
    if pooling not in ("max", "events"):
        raise UsageError(f"pooling '{pooling}' needs the local matcher; '{method}' pools max or events")
    return scores


def exclusion_mask(gallery: GalleryData, groups: list[str] | None = None) -> np.ndarray:
    """Self pairs, other-flank pairs and (with ``groups``) same-group pairs."""
    n = len(gallery)
    mask = np.eye(n, dtype=bool) | flank_mask(gallery.viewpoints, gallery.viewpoints)
    if groups is not None:
        g = np.asarray(groups, dtype=object)
        mask |= g[:, None] == g[None, :]
    return mask


def _pairs(best: np.ndarray, labels: np.ndarray, ids: np.ndarray, rows: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(score, same?) for each query row and each identity it was compared with."""
    b = best[rows]
    finite = np.isfinite(b)
    same = labels[None, :] == ids[rows][:, None]
    return b[finite], same[finite]


def leave_one_out(gallery: GalleryData, method: str, groups: list[str] | None = None,
                  calibration: str = "logistic", pooling: str = "max",
                  left_out: str | None = None, scores: np.ndarray | None = None) -> dict:
    """Metrics JSON (see :mod:`wildspace.reid.metrics`) plus the threshold, the Brier score
    and reliability curve of the answers, and the settings.

    Args:
        groups: encounter (or any group) label per image, left out with the query.
        pooling: how image scores become identity scores (:mod:`wildspace.reid.pooling`).
        left_out: the sentence describing what was left out (default from ``groups``).
        scores: ``(N, N)`` pair scores of a :data:`PRECOMPUTED` method (``lightglue``).
    """
    exclude = exclusion_mask(gallery, groups)
    if method in PRECOMPUTED:
        sim = _precomputed(method, scores, (len(gallery), len(gallery)), pooling)
        sim[exclude] = -np.inf
        votes = None
    else:
        matcher = Matcher(gallery, method, pooling="lnbnn" if pooling == "lnbnn" else None)
        if method == "fused":
            for part in ("embed", "local"):
                matcher.calibrate(part)
        sim, votes = matcher.scores(gallery.features, gallery.embeddings, exclude, with_votes=True)
    ids = gallery.identities
    labels, best = pooled_scores(pooling, sim, ids, votes=votes, gallery_events=groups,
                                 compared=~exclude)
    log_scale = method in LOG_SCALE
    all_rows = np.arange(len(gallery))
    try:
        cal = fit_calibration(*_pairs(best, labels, ids, all_rows), calibration, log_scale=log_scale)
    except CalibrationError:
        cal = None
    decision = np.zeros(len(gallery), dtype=bool)
    prob = np.zeros_like(best)
    top = best.max(axis=1) if best.size else np.full(len(gallery), -np.inf)
    top_label = labels[np.argmax(np.where(np.isfinite(best), best, -1e300), axis=1)] if best.size \
        else np.full(len(gallery), "")
    for label in np.unique(ids):
        rows = np.nonzero(ids != label)[0]
        try:
            c = fit_calibration(*_pairs(best, labels, ids, rows), calibration, log_scale=log_scale)
        except CalibrationError:
            continue  # cannot decide without calibration: "new" (a miss for known queries)
        q = ids == label
        prob[q] = np.where(np.isfinite(best[q]), c.probability(np.where(np.isfinite(best[q]),
                                                                          best[q], 0)), 0.0)
        decision[q] = np.isfinite(top[q]) & c.is_known(np.where(np.isfinite(top[q]), top[q], 0))
    out = evaluate(sim, ids, ids, exclude=exclude, known_decision=decision,
                   identity=(labels, best))
    # what users meet: the probability shown for the top candidate, and was it right?
    top_p = prob.max(axis=1) if prob.size else np.zeros(len(gallery))
    answered = np.isfinite(top)
    right = (top_label == ids) & answered
    finite = np.isfinite(best)
    pair_p = prob[finite]
    pair_y = (labels[None, :] == ids[:, None])[finite]
    if left_out is None:
        left_out = "image and its group" if groups is not None else "image"
    out.update({"method": method, "calibration": calibration, "pooling": pooling,
                "threshold": None if cal is None else cal.threshold,
                "threshold_probability": None if cal is None else cal.min_probability,
                "calibration_pairs": "cross-encounter" if groups is not None else "all (no encounters)",
                "brier_top": brier_score(top_p[answered], right[answered]),
                "brier_pairs": brier_score(pair_p, pair_y),
                "reliability": reliability_curve(top_p[answered], right[answered]),
                "images": len(gallery), "identities": int(len(np.unique(ids))),
                "encounters": None if groups is None else int(len(set(groups))),
                "left_out": left_out})
    return out


def open_set_split(gallery: GalleryData, unknown: list[str], method: str = "local",
                   groups: list[str] | None = None, pooling: str = "max",
                   scores: np.ndarray | None = None) -> dict:
    """A gallery of all animals but ``unknown``, queried with every image.

    The gallery calibrates itself as a real one would (leave-one-encounter-out among its own
    images); queries of a gallery animal leave out their own encounter ("found from another
    night"); queries of an ``unknown`` animal are compared with the whole gallery and should
    be called *new*. ``scores``: the ``(N, N)`` pair scores of a :data:`PRECOMPUTED` method.
    """

    ids = gallery.identities
    unknown_set = set(unknown)
    missing = unknown_set - set(ids.tolist())
    if missing:
        raise UsageError(f"unknown identities not in the table: {', '.join(sorted(missing))}")
    cols = np.nonzero(~np.isin(ids, list(unknown_set)))[0]
    if not len(cols):
        raise UsageError("every identity is held out: nothing left for the gallery")
    sub = GalleryData(name="known", records=[gallery.records[i] for i in cols],
                      images=[gallery.images[i] for i in cols],
                      features=None if gallery.features is None else [gallery.features[i] for i in cols],
                      embeddings=None if gallery.embeddings is None else gallery.embeddings[cols],
                      embedder=gallery.embedder)
    g = None if groups is None else np.asarray(groups, dtype=object)
    sub_groups = None if g is None else g[cols].tolist()
    exclude = np.zeros((len(gallery), len(cols)), bool)
    exclude[cols, np.arange(len(cols))] = True
    if g is not None:
        exclude |= g[:, None] == g[cols][None, :]
    exclude |= flank_mask(gallery.viewpoints, sub.viewpoints)
    if method in PRECOMPUTED:
        full = _precomputed(method, scores, (len(gallery), len(gallery)), pooling)
        sim = np.where(exclude, -np.inf, full[:, cols])
        # the gallery calibrates itself: each of its images with its own encounter left out
        own = exclude[cols]
        sub_labels, sub_best = pooled_scores(pooling, np.where(own, -np.inf, sim[cols]), ids[cols],
                                             gallery_events=sub_groups, compared=~own)
        cal = calibrate_identity_rows(sub_labels, sub_best, ids[cols], method)
        labels, best = pooled_scores(pooling, sim, ids[cols], gallery_events=sub_groups,
                                     compared=~exclude)
    else:
        matcher = Matcher(sub, method, pooling=pooling)
        cal = matcher.calibrate(groups=sub_groups)
        sim, votes = matcher.scores(gallery.features, gallery.embeddings, exclude, with_votes=True)
        labels, best = matcher.identity_scores(sim, votes, exclude, sub_groups)
    top = best.max(axis=1)
    top_label = labels[np.argmax(np.where(np.isfinite(best), best, -1e300), axis=1)]
    known_call = np.isfinite(top) & cal.is_known(np.where(np.isfinite(top), top, 0.0))
    is_unknown = np.isin(ids, list(unknown_set))
    found = known_call & (top_label == ids)
    per_unknown = [{"file": gallery.records[i].file, "identity": str(ids[i]),
                    "probability": float(cal.probability([top[i]])[0]) if np.isfinite(top[i]) else 0.0,
                    "verdict": "known" if known_call[i] else "new"} for i in np.nonzero(is_unknown)[0]]
    own = np.array([np.isfinite(best[i, labels == ids[i]]).any() for i in range(len(ids))])
    answerable = ~is_unknown & own  # a gallery animal with a photo from another encounter
    return {"gallery_identities": sorted(set(ids[cols].tolist())), "unknown_identities": sorted(unknown_set),
            "threshold": cal.threshold, "pooling": pooling,
            "unknown_queries": int(is_unknown.sum()),
            "new_rate": float(np.mean(~known_call[is_unknown])) if is_unknown.any() else None,
            "known_queries": int(answerable.sum()),
            "known_top1": float(np.mean(top_label[answerable] == ids[answerable])) if answerable.any() else None,
            "known_found": float(np.mean(found[answerable])) if answerable.any() else None,
            "unknown_answers": per_unknown}


def group_labels(rows, columns: list[str], table_path: Path) -> list[str]:
    """Group key per gallery image from CSV columns (e.g. ``station,date``)."""
    import csv

    with open(table_path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"--group-by column(s) {', '.join(missing)} not in {table_path.name}; "
                             f"columns: {', '.join(reader.fieldnames or [])}")
        by_file = {}
        for r in reader:
            key = next((r[k] for k in ("file", "image", "path", "filename") if k in r), "")
            by_file[key] = "|".join(r[c] for c in columns)
    return [by_file.get(rec.file, rec.file) for rec in rows]
