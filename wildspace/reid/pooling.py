"""Per-identity evidence: pool image scores (or keypoint votes) over an animal's gallery.

One best frame is a weak witness: the frame two seconds later of the same burst wins it.
Pooling asks for evidence from several photos and encounters of the same animal.

- ``max``: the best image score per identity (the old rule).
- ``events``: the best score within each of the identity's encounters (events), then the sum
  of its ``top`` best encounters: an animal matched in two encounters beats one matched
  once by a near-duplicate burst.
- ``keypoints`` (HotSpotter's name scoring): every query keypoint votes at most once per
  identity, with its best verified vote among that identity's images; the identity's score
  is the sum. Two photos showing different parts of the coat add up, one keypoint matched in
  ten near-identical frames counts once.
- ``lnbnn`` (``local`` only): HotSpotter's whole scoring, :mod:`wildspace.reid.lnbnn`: every
  query descriptor searched among all gallery descriptors at once, LNBNN votes, one vote per
  descriptor per identity, spatial verification, scene background removed; the matcher's
  "votes" are then its :class:`~wildspace.reid.lnbnn.LnbnnResult`.
"""

from __future__ import annotations

import numpy as np

from wildspace.errors import UsageError

MODES = ("max", "events", "keypoints", "lnbnn")


def identity_labels(gallery_ids) -> np.ndarray:
    """Sorted distinct identities (the column order of every pooled matrix)."""
    return np.array(sorted(set(np.asarray(gallery_ids).tolist())))


def pool_events(sim: np.ndarray, gallery_ids, gallery_events=None, top: int = 2
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (I,), scores (Q, I))``: per identity, the sum of its ``top`` best encounter
    scores, an encounter scoring its best image (``-inf`` = not compared, never counted).

    Without ``gallery_events`` every image is its own encounter. An identity with no
    compared image scores ``-inf``; fewer than ``top`` compared encounters add nothing for
    the missing ones.
    """
    sim = np.asarray(sim, dtype=np.float64)
    ids = np.asarray(gallery_ids)
    events = np.arange(len(ids)) if gallery_events is None else np.asarray(gallery_events)
    labels = identity_labels(ids)
    out = np.full((sim.shape[0], len(labels)), -np.inf)
    for k, label in enumerate(labels):
        cols = np.nonzero(ids == label)[0]
        if not len(cols):
            continue
        per_event = np.stack([sim[:, cols[events[cols] == e]].max(axis=1)
                              for e in np.unique(events[cols])], axis=1)
        finite = np.isfinite(per_event)
        best = -np.sort(-np.where(finite, per_event, -np.inf), axis=1)[:, :top]
        total = np.where(np.isfinite(best), best, 0.0).sum(axis=1)
        out[:, k] = np.where(finite.any(axis=1), total, -np.inf)
    return labels, out


def pool_keypoints(votes, gallery_ids, compared: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (I,), scores (Q, I))`` from verified votes (see
    :func:`wildspace.reid.local_features.score_matrix` ``return_votes``).

    Args:
        votes: per query ``(keypoint, frame, weight)`` arrays.
        compared: optional boolean ``(Q, G)``: pairs that were compared; an identity none of
            whose images was compared with a query scores ``-inf`` (default: all compared).
    """
    ids = np.asarray(gallery_ids)
    labels = identity_labels(ids)
    col = np.searchsorted(labels, ids)
    out = np.zeros((len(votes), len(labels)))
    for q, (kp, frame, weight) in enumerate(votes):
        if not len(kp):
            continue
        ident = col[np.asarray(frame)]
        best: dict[tuple[int, int], float] = {}
        for a, b, w in zip(np.asarray(kp).tolist(), ident.tolist(), np.asarray(weight).tolist()):
            if w > best.get((a, b), -1.0):
                best[(a, b)] = w
        for (_, b), w in best.items():
            out[q, b] += w
    if compared is not None:
        compared = np.asarray(compared, bool)
        for k in range(len(labels)):
            out[~compared[:, col == k].any(axis=1), k] = -np.inf
    return labels, out


def pooled_scores(mode: str, sim: np.ndarray, gallery_ids, *, votes=None, gallery_events=None,
                  compared: np.ndarray | None = None, top: int = 2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Identity scores by ``mode`` (see the module docstring)."""
    from wildspace.reid.metrics import identity_scores

    if mode not in MODES:
        raise UsageError(f"pooling '{mode}' is not one of {', '.join(MODES)}")
    sim = np.asarray(sim, dtype=np.float64)
    if compared is not None:
        sim = np.where(compared, sim, -np.inf)
    if mode == "max":
        return identity_scores(sim, gallery_ids)
    if mode == "events":
        return pool_events(sim, gallery_ids, gallery_events, top)
    if mode == "lnbnn":
        from wildspace.reid.lnbnn import LnbnnResult

        if not isinstance(votes, LnbnnResult):
            raise UsageError("lnbnn pooling needs the LNBNN matcher's result (method local)")
        names = np.array(votes.names, dtype=np.float64)
        if compared is not None:
            ids = np.asarray(gallery_ids)
            for k, label in enumerate(votes.labels):
                names[~np.asarray(compared, bool)[:, ids == label].any(axis=1), k] = -np.inf
        return votes.labels, names
    if votes is None:
        raise UsageError("keypoint pooling needs the matcher's votes")
    return pool_keypoints(votes, gallery_ids, np.isfinite(sim) if compared is None else compared)
