"""Scores between query images and a gallery, per method, and the open-set lookup.

Methods:
- ``local``: weight-free RootSIFT matching (works with no model at all; the default when the
  gallery has no embeddings).
- ``embed``: cosine similarity of embeddings (FAISS).
- ``fused``: embeddings shortlist the gallery (top ``shortlist`` images), local features
  re-score the shortlist, and the two calibrated probabilities are averaged.

Flank awareness: a query with a stated viewpoint (``left``/``right``) is only compared with
gallery images of the same or an unstated viewpoint; left and right flanks carry different
patterns, so comparing across them only adds noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildspace.errors import WildspaceError
from wildspace.reid.calibration import Calibration
from wildspace.reid.gallery import GalleryData
from wildspace.reid.local_features import LocalFeatureConfig, LocalFeatures, score_matrix
from wildspace.reid.pooling import MODES as POOLING
from wildspace.reid.pooling import pooled_scores
from wildspace.types import IdentityMatch, LookupResult

METHODS = ("local", "embed", "fused")
SHORTLIST = 50
DEFAULT_POOLING = "max"
CALIBRATION_QUERIES = 200  # gallery images used as leave-one-out queries when calibrating


class MatchingError(WildspaceError, ValueError):
    """The method cannot run on this gallery (e.g. ``embed`` without embeddings)."""


def flank_mask(query_views, gallery_views) -> np.ndarray:
    """``(Q, G)`` True where flanks are known on both sides and differ (do not compare)."""
    q = np.asarray(query_views, dtype=object).reshape(-1, 1)
    g = np.asarray(gallery_views, dtype=object).reshape(1, -1)
    return (q != "") & (g != "") & (q != g)


def available_methods(gallery: GalleryData) -> list[str]:
    out = []
    if gallery.features is not None:
        out.append("local")
    if gallery.embeddings is not None:
        out.append("embed")
        if gallery.features is not None:
            out.append("fused")
    return out


def default_method(gallery: GalleryData) -> str:
    methods = available_methods(gallery)
    if "fused" in methods:
        return "fused"
    if not methods:
        raise MatchingError(f"gallery '{gallery.name}' has neither embeddings nor local features")
    return methods[0]


def _check(gallery: GalleryData, method: str) -> None:
    if method not in METHODS:
        raise MatchingError(f"method '{method}' is not one of {', '.join(METHODS)}")
    if method not in available_methods(gallery):
        raise MatchingError(f"gallery '{gallery.name}' cannot use method '{method}'; it has "
                            f"{', '.join(available_methods(gallery)) or 'nothing to match'}")


def _features(gallery: GalleryData) -> list[LocalFeatures]:
    if gallery.features is None:
        raise MatchingError(f"gallery '{gallery.name}' has no local features")
    return gallery.features


def _embeddings(gallery: GalleryData) -> np.ndarray:
    if gallery.embeddings is None:
        raise MatchingError(f"gallery '{gallery.name}' has no embeddings")
    return gallery.embeddings


def _context(gallery: GalleryData) -> dict:
    """What the local matcher's cross-identity background check needs about the gallery."""
    return {"gallery_ids": gallery.identities,
            "gallery_stations": np.array([r.location for r in gallery.records], dtype=object)}


def score_against(gallery: GalleryData, method: str, *, query_features=None,
                  query_embeddings=None, exclude: np.ndarray | None = None,
                  local_config: LocalFeatureConfig = LocalFeatureConfig(),
                  shortlist: int = SHORTLIST, with_votes: bool = False):
    """Raw ``(Q, G)`` scores (``-inf`` = not compared) for the method's components.

    For ``fused`` this returns the local scores restricted to the embedding shortlist; use
    :func:`fused_probability` to combine them with the embedding scores. ``with_votes``
    (``local`` only) also returns the matcher's verified votes per query.
    """
    n_g = len(gallery)
    if method == "local":
        s, votes = score_matrix(query_features, _features(gallery), local_config, exclude,
                                return_votes=True, **_context(gallery))
        s = s.astype(np.float64)
        if exclude is not None:
            s[exclude] = -np.inf
        return (s, votes) if with_votes else s
    emb = query_embeddings @ _embeddings(gallery).T
    emb = emb.astype(np.float64)
    if exclude is not None:
        emb[exclude] = -np.inf
    if method == "embed":
        return emb
    # fused: local matching only inside each query's embedding shortlist
    k = min(shortlist, n_g)
    skip = np.ones_like(emb, dtype=bool)
    top = np.argsort(-emb, axis=1)[:, :k]
    np.put_along_axis(skip, top, False, axis=1)
    skip |= ~np.isfinite(emb)
    local = score_matrix(query_features, _features(gallery), local_config, skip,
                         **_context(gallery)).astype(np.float64)
    local[skip] = -np.inf
    return local


def fused_probability(p_embed: np.ndarray, p_local: np.ndarray) -> np.ndarray:
    """Average of the two calibrated probabilities (``-inf`` where a pair was not compared)."""
    out = (p_embed + np.where(np.isfinite(p_local), p_local, 0.0)) / 2.0
    return np.where(np.isfinite(p_local), out, -np.inf)


@dataclass
class Matcher:
    """Lookup against one gallery with one method and its calibration."""

    gallery: GalleryData
    method: str
    local_config: LocalFeatureConfig = LocalFeatureConfig()
    pooling: str | None = None  # None: the gallery's (meta "pooling"), else DEFAULT_POOLING

    def __post_init__(self):
        _check(self.gallery, self.method)
        if self.pooling is None:
            self.pooling = self.gallery.meta.get("pooling", DEFAULT_POOLING)
            if self.pooling == "lnbnn" and self.method != "local":
                self.pooling = DEFAULT_POOLING  # LNBNN name scoring is the local matcher's
        if self.pooling not in POOLING:
            raise MatchingError(f"pooling '{self.pooling}' is not one of {', '.join(POOLING)}")
        if self.pooling == "lnbnn" and self.method != "local":
            raise MatchingError("pooling 'lnbnn' scores local features: use it with method 'local'")

    # -- scoring -----------------------------------------------------------------------
    def scores(self, query_features=None, query_embeddings=None,
               exclude: np.ndarray | None = None, with_votes: bool = False):
        """Final ``(Q, G)`` scores in the units the method's calibration expects
        (``with_votes``: and the local matcher's votes, ``None`` for other methods)."""
        if self.method == "local" and self.pooling == "lnbnn":
            from wildspace.reid.lnbnn import lnbnn_scores

            res = lnbnn_scores(query_features, _features(self.gallery), self.gallery.identities, exclude,
                               gallery_stations=_context(self.gallery)["gallery_stations"])
            return (res.frames, res) if with_votes else res.frames
        if self.method == "local":
            s, votes = score_against(self.gallery, "local", query_features=query_features,
                                     exclude=exclude, local_config=self.local_config,
                                     with_votes=True)
            return (s, votes) if with_votes else s
        if self.method != "fused":
            s = score_against(self.gallery, self.method, query_features=query_features,
                              query_embeddings=query_embeddings, exclude=exclude,
                              local_config=self.local_config)
            return (s, None) if with_votes else s
        emb = score_against(self.gallery, "embed", query_embeddings=query_embeddings,
                            exclude=exclude)
        local = score_against(self.gallery, "fused", query_features=query_features,
                              query_embeddings=query_embeddings, exclude=exclude,
                              local_config=self.local_config)
        p_e = self.calibration("embed").probability(emb)
        p_l = self.calibration("local").probability(np.where(np.isfinite(local), local, 0.0))
        s = fused_probability(np.where(np.isfinite(emb), p_e, 0.0),
                              np.where(np.isfinite(local), p_l, -np.inf))
        return (s, None) if with_votes else s

    def identity_scores(self, sim: np.ndarray, votes=None, exclude: np.ndarray | None = None,
                        events=None) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, (Q, I) scores)`` pooled per identity by :attr:`pooling` (keypoint
        pooling needs votes: other methods pool ``max``)."""
        mode = self.pooling or DEFAULT_POOLING  # set by __post_init__
        if mode in ("keypoints", "lnbnn") and votes is None:
            mode = "max"
        if events is None and mode == "events":
            from wildspace.reid.events import gallery_encounters

            events = gallery_encounters(self.gallery)[0]
        compared = None if exclude is None else ~np.asarray(exclude, bool)
        return pooled_scores(mode, sim, self.gallery.identities, votes=votes,
                             gallery_events=events, compared=compared)

    # -- calibration ---------------------------------------------------------------------
    def calibration(self, method: str | None = None) -> Calibration:
        method = method or self.method
        cal = self.gallery.calibrations.get(method)
        if cal is None:
            raise MatchingError(f"gallery '{self.gallery.name}' is not calibrated for '{method}'; "
                                "rebuild it or run calibrate()")
        return Calibration.from_dict(cal)

    def calibrate(self, method: str | None = None, seed: int = 0, groups=None) -> Calibration:
        """Leave-one-encounter-out calibration on (a sample of) the gallery, stored in it.

        Each sampled image is queried with its own encounter left out (``groups``, default
        from the records' stations and dates; without those, only itself), so the fit sees
        cross-encounter pairs only: same-burst pairs are near duplicates and would make
        "this is Cat5" overconfident."""
        method = method or self.method
        if method == "fused":
            for part in ("embed", "local"):
                if part not in self.gallery.calibrations:
                    self.calibrate(part, seed)
        n = len(self.gallery)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=min(n, CALIBRATION_QUERIES), replace=False))
        exclude = np.zeros((len(rows), n), dtype=bool)
        exclude[np.arange(len(rows)), rows] = True
        if groups is None:
            from wildspace.reid.events import gallery_encounters

            groups = gallery_encounters(self.gallery)[0]
        if groups is not None:
            g = np.asarray(groups, dtype=object)
            exclude |= g[rows][:, None] == g[None, :]
        exclude |= flank_mask(self.gallery.viewpoints[rows], self.gallery.viewpoints)
        feats = [self.gallery.features[i] for i in rows] if self.gallery.features else None
        embs = self.gallery.embeddings[rows] if self.gallery.embeddings is not None else None
        saved, self.method = self.method, method
        try:
            sim, votes = self.scores(feats, embs, exclude, with_votes=True)
            labels, best = self.identity_scores(sim, votes, exclude, groups)
        finally:
            self.method = saved
        ids = self.gallery.identities
        cal = calibrate_identity_rows(labels, best, ids[rows], method)
        self.gallery.calibrations[method] = cal.to_dict()
        return cal

    # -- lookup ---------------------------------------------------------------------------
    def lookup(self, query_features: LocalFeatures | None = None,
               query_embedding: np.ndarray | None = None, viewpoint: str = "",
               k: int = 5) -> LookupResult:
        """Top-``k`` identities for one query and the known/new verdict."""
        excl = flank_mask([viewpoint], self.gallery.viewpoints)
        feats = [query_features] if query_features is not None else None
        embs = None if query_embedding is None else np.asarray(query_embedding).reshape(1, -1)
        sim, votes = self.scores(feats, embs, excl, with_votes=True)
        cal = self.calibration()
        labels, best = self.identity_scores(sim, votes, excl)
        order = np.argsort(-best[0], kind="stable")[:k]
        matches = []
        for j in order:
            if not np.isfinite(best[0, j]):
                continue
            cols = np.nonzero(self.gallery.identities == labels[j])[0]
            img = int(cols[np.argmax(sim[0, cols])])
            matches.append(IdentityMatch(str(labels[j]), float(best[0, j]),
                                         float(cal.probability([best[0, j]])[0]), img,
                                         self.gallery.records[img].viewpoint))
        top_p = matches[0].probability if matches else 0.0
        known = bool(matches) and top_p >= cal.min_probability
        return LookupResult(matches=tuple(matches), verdict="known" if known else "new",
                            identity=matches[0].identity if known else None,
                            probability=top_p, method=self.method, threshold=cal.threshold)


def calibrate_identity_rows(labels, best: np.ndarray, query_ids, method: str) -> Calibration:
    """Positives/negatives from (pooled) identity scores of leave-one-out queries, then a
    logistic fit."""
    from wildspace.reid.calibration import fit_calibration

    finite = np.isfinite(best)
    same = np.asarray(labels)[None, :] == np.asarray(query_ids)[:, None]
    return fit_calibration(best[finite], same[finite], "logistic",
                           log_scale=method in ("local", "lightglue"))
