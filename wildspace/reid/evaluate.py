"""Leave-one-out evaluation of a re-ID method on an identity-labelled folder.

Every image is queried against all the others (optionally also leaving out the images of its
own capture event, ``group_by`` columns such as station + date, which is the honest test when
bursts of near-identical frames exist). Images whose identity has no other usable image are
*unknown* queries and count in ``baus`` only.

The open-set decision for each query uses a calibration fitted **without that query's
identity** (leave-one-identity-out), so the reported ``baks``/``baus`` are not fitted on the
answers they score. The ``threshold`` reported is the one fitted on all queries, which is what
a gallery built from the same images would use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildspace.reid.calibration import CalibrationError, fit_calibration, query_pairs
from wildspace.reid.gallery import GalleryData
from wildspace.reid.matching import Matcher, flank_mask
from wildspace.reid.metrics import evaluate, identity_scores


def exclusion_mask(gallery: GalleryData, groups: list[str] | None = None) -> np.ndarray:
    """Self pairs, other-flank pairs and (with ``groups``) same-group pairs."""
    n = len(gallery)
    mask = np.eye(n, dtype=bool) | flank_mask(gallery.viewpoints, gallery.viewpoints)
    if groups is not None:
        g = np.asarray(groups, dtype=object)
        mask |= g[:, None] == g[None, :]
    return mask


def _pairs(sim: np.ndarray, ids: np.ndarray, rows: np.ndarray):
    return query_pairs(sim[rows], ids[rows], ids)


def leave_one_out(gallery: GalleryData, method: str, groups: list[str] | None = None,
                  calibration: str = "logistic") -> dict:
    """Metrics JSON (see :mod:`wildspace.reid.metrics`) plus the threshold and settings."""
    matcher = Matcher(gallery, method)
    exclude = exclusion_mask(gallery, groups)
    if method == "fused":
        for part in ("embed", "local"):
            matcher.calibrate(part)
    sim = matcher.scores(gallery.features, gallery.embeddings, exclude)
    ids = gallery.identities
    log_scale = method == "local"
    all_rows = np.arange(len(gallery))
    try:
        cal = fit_calibration(*_pairs(sim, ids, all_rows), calibration, log_scale=log_scale)
    except CalibrationError:
        cal = None
    decision = np.zeros(len(gallery), dtype=bool)
    _, best = identity_scores(sim, ids)
    top = best.max(axis=1) if best.size else np.full(len(gallery), -np.inf)
    for label in np.unique(ids):
        rows = np.nonzero(ids != label)[0]
        try:
            c = fit_calibration(*_pairs(sim, ids, rows), calibration, log_scale=log_scale)
        except CalibrationError:
            continue  # cannot decide without calibration: "new" (a miss for known queries)
        q = ids == label
        decision[q] = np.isfinite(top[q]) & c.is_known(np.where(np.isfinite(top[q]), top[q], 0))
    out = evaluate(sim, ids, ids, exclude=exclude, known_decision=decision)
    out.update({"method": method, "calibration": calibration,
                "threshold": None if cal is None else cal.threshold,
                "threshold_probability": None if cal is None else cal.min_probability,
                "images": len(gallery), "identities": int(len(np.unique(ids))),
                "left_out": "image and its group" if groups is not None else "image"})
    return out


def group_labels(rows, columns: list[str], table_path: Path) -> list[str]:
    """Group key per gallery image from CSV columns (e.g. ``station,date``)."""
    import csv

    with open(table_path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"--group-by column(s) {', '.join(missing)} not in {table_path.name}; "
                             f"columns: {', '.join(reader.fieldnames or [])}")
        by_file = {}
        for r in reader:
            key = next((r[k] for k in ("file", "image", "path", "filename") if k in r), "")
            by_file[key] = "|".join(r[c] for c in columns)
    return [by_file.get(rec.file, rec.file) for rec in rows]
