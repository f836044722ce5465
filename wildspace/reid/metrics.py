"""Re-identification metrics from a similarity matrix.

Conventions:
- ``sim`` is ``(Q, G)``: query ``q`` against gallery image ``g``, higher = more similar.
  ``-inf`` (or an ``exclude`` mask) removes a pair: leave-one-out puts the diagonal there.
- An identity's score for a query is the **best** score over that identity's gallery images.
- Ties are counted against the query (pessimistic): the true identity is at rank
  ``1 + #(other identities scoring >= it)``. A query with no evidence at all is a miss, not a
  lucky guess.
- A query is *known* when its identity still has an image in its (non-excluded) gallery,
  *unknown* otherwise; unknown queries only count in ``baus``.

Definitions (per the re-ID literature and the seed projects):
- ``top_k``: fraction of known queries whose identity is ranked ``<= k``.
- ``map_at_k``: mean over known queries of ``1 / rank`` if ``rank <= k`` else 0 (MAP@k with
  one true identity per query, as in the tiger seed project's MAP@1/3/5).
- ``mAP``: mean over known queries of the average precision of the gallery *image* ranking
  (images of the query's identity are relevant).
- ``baks``: balanced accuracy on known samples: with an open-set threshold, a known query is
  right when it is called known *and* the top identity is correct; accuracy is averaged per
  identity, then over identities.
- ``baus``: balanced accuracy on unknown samples: an unknown query is right when it is called
  new; averaged per identity, then over identities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranking:
    """Per-query identity ranking.

    Attributes:
        identities: ``(Q, I)`` identity labels in descending score order.
        scores: ``(Q, I)`` the matching best scores (``-inf`` where the identity has no
            usable image for that query).
        true_rank: ``(Q,)`` pessimistic 1-based rank of the true identity, 0 for unknown queries.
    """

    identities: np.ndarray
    scores: np.ndarray
    true_rank: np.ndarray

    @property
    def known(self) -> np.ndarray:
        return self.true_rank > 0


def _masked(sim: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    sim = np.array(sim, dtype=np.float64)
    if exclude is not None:
        sim[np.asarray(exclude, dtype=bool)] = -np.inf
    return sim


def identity_scores(sim: np.ndarray, gallery_ids, exclude: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Best score per identity: returns ``(labels (I,), scores (Q, I))``."""
    sim = _masked(sim, exclude)
    gallery_ids = np.asarray(gallery_ids)
    labels = np.array(sorted(set(gallery_ids.tolist())))
    out = np.full((sim.shape[0], len(labels)), -np.inf)
    for k, label in enumerate(labels):
        cols = gallery_ids == label
        if cols.any():
            out[:, k] = sim[:, cols].max(axis=1)
    return labels, out


def rank_identities(sim: np.ndarray, query_ids, gallery_ids,
                    exclude: np.ndarray | None = None, identity=None) -> Ranking:
    """Rank gallery identities for every query (see the module conventions).

    ``identity``: optional precomputed ``(labels, scores (Q, I))`` (a pooled identity score,
    :mod:`wildspace.reid.pooling`) instead of the best image score."""
    labels, scores = identity if identity is not None else identity_scores(sim, gallery_ids, exclude)
    query_ids = np.asarray(query_ids)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.zeros(len(query_ids), dtype=np.int64)
    for q, label in enumerate(query_ids):
        hit = np.nonzero(labels == label)[0]
        if not len(hit) or not np.isfinite(scores[q, hit[0]]):
            continue
        t = scores[q, hit[0]]
        others = np.delete(scores[q], hit[0])
        ranks[q] = 1 + int(np.sum(others >= t))
    return Ranking(identities=labels[order], scores=np.take_along_axis(scores, order, axis=1),
                   true_rank=ranks)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one ranked list (ties pessimistic: relevant items after tied irrelevant ones)."""
    valid = np.isfinite(scores)
    scores, relevant = scores[valid], relevant[valid]
    n_rel = int(relevant.sum())
    if n_rel == 0:
        return 0.0
    order = np.lexsort((relevant.astype(int), -scores))  # by score desc, irrelevant first in ties
    rel = relevant[order]
    hits = np.cumsum(rel)
    precision = hits / np.arange(1, len(rel) + 1)
    return float(np.sum(precision[rel]) / n_rel)


def _balanced(correct: np.ndarray, labels: np.ndarray) -> float | None:
    if not len(correct):
        return None
    per = [float(np.mean(correct[labels == u])) for u in np.unique(labels)]
    return float(np.mean(per))


def evaluate(sim: np.ndarray, query_ids, gallery_ids, exclude: np.ndarray | None = None,
             known_decision: np.ndarray | None = None, ks=(1, 3, 5), identity=None) -> dict:
    """All metrics as a JSON-ready dict.

    Args:
        sim: ``(Q, G)`` similarities.
        exclude: boolean ``(Q, G)`` pairs left out (self, same event).
        known_decision: ``(Q,)`` booleans, the open-set decision "this is a known animal" for
            each query; without it ``baks``/``baus`` are ``None``.
        ks: the ``k`` of ``map_at_k`` (``top1``/``top5`` are always reported).
        identity: optional pooled ``(labels, scores)`` that rank the identities.
    """
    query_ids = np.asarray(query_ids)
    gallery_ids = np.asarray(gallery_ids)
    r = rank_identities(sim, query_ids, gallery_ids, exclude, identity)
    known = r.known
    n_known = int(known.sum())
    rank = r.true_rank[known]

    def top(k):
        return float(np.mean(rank <= k)) if n_known else None

    masked = _masked(sim, exclude)
    aps = [average_precision(masked[q], gallery_ids == query_ids[q]) for q in np.nonzero(known)[0]]
    out = {
        "queries": int(len(query_ids)), "known_queries": n_known,
        "unknown_queries": int(len(query_ids) - n_known),
        "top1": top(1), "top5": top(5),
        "mAP": float(np.mean(aps)) if aps else None,
        "map_at_k": {str(k): (float(np.mean(np.where(rank <= k, 1.0 / np.maximum(rank, 1), 0.0)))
                              if n_known else None) for k in ks},
        "baks": None, "baus": None,
    }
    if known_decision is not None:
        decided = np.asarray(known_decision, dtype=bool)
        top_correct = r.identities[:, 0] == query_ids if r.identities.shape[1] else \
            np.zeros(len(query_ids), bool)
        right_known = decided & top_correct & (r.true_rank == 1)
        out["baks"] = _balanced(right_known[known], query_ids[known])
        out["baus"] = _balanced(~decided[~known], query_ids[~known])
    return out
