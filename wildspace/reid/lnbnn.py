"""HotSpotter-style identity scoring: every query descriptor against the whole gallery at once.

Crall et al. (2013), *HotSpotter: patterned species instance recognition*, score a query
against all gallery images in one go instead of image pair by image pair:

1. **One nearest-neighbour search** of each query descriptor among *all* usable gallery
   descriptors (``k`` neighbours that vote plus the ones that normalise). A query's excluded
   gallery images (itself, its own encounter in leave-one-out tests, the other flank) are not
   in the index it is searched in: they neither vote nor normalise nor count as evidence.
2. **LNBNN** (local naive-Bayes nearest neighbour) votes: a neighbour at distance ``d`` votes
   ``d_norm - d`` where ``d_norm`` is the distance of the normalising neighbour, the
   ``(k+1)``-th (``normaliser="kth"``, HotSpotter's rule) or the nearest neighbour of another
   identity (``normaliser="other"``). A descriptor that is as close to many gallery images (or
   to two animals) as to its match counts (almost) nothing.
3. **Name scoring**: each query descriptor votes at most once per identity (its best vote
   among that identity's images); an identity's score is the sum of its votes, so two photos
   showing different parts of the coat add up and ten frames of one burst count once.
4. **Spatial verification**: the ``shortlist`` best images of each identity (by their summed
   votes) are verified with a RANSAC similarity transform; only inlier votes are kept and the
   identity scores are summed again (``shortlist=0``: no verification).

Scene background (fixed cameras see the same rocks in every frame) is removed before voting:
a descriptor whose near neighbours (``static_k``) include one at the same place (``static_px``)
of another same-size frame is static scenery, on the query side and in the gallery; with
gallery identities and stations known, a gallery descriptor whose ``cross_k`` nearest
neighbours include another identity's frame of the same station is scenery as well (that
never looks at the query's identity).

``mirror``: the query's left-right mirrored features are scored too and each identity keeps the
better of the two (a flank seen the other way round).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from wildspace.errors import UsageError
from wildspace.reid.local_features import LocalFeatures

NORMALISERS = ("kth", "other")


@dataclass(frozen=True)
class LnbnnConfig:
    """Settings of :func:`lnbnn_scores` (pixels refer to the features' resized frames).

    Attributes:
        k: neighbours that vote per query descriptor.
        normaliser: ``kth`` (the ``(k+1)``-th usable neighbour) or ``other`` (the nearest usable
            neighbour of another identity than the voted one).
        depth: neighbours fetched per descriptor (background ones are skipped; ``other`` looks
            this deep for another identity, else uses the farthest fetched).
        shortlist: images per identity spatially verified (0: votes are not verified).
        ransac_px: RANSAC reprojection threshold.
        min_inliers: an image with fewer inliers keeps no votes.
        static_k: nearest neighbours checked for a same-place (static background) match.
        static_px: same place within this many px of a same-size frame.
        cross_k: gallery neighbours checked for another identity's frame at the same station
            (0: off; needs gallery stations).
        scene_shift: a same-size gallery image whose matches with the query fit a near-identity
            similarity transform (shift below this fraction of the width, scale within
            ``scene_scale``, rotation below ``scene_deg``) shows the same scene from a camera
            that moved a little: those matches are scenery on both sides (0: off).
        scene_scale: largest scale change (either way) of a scene transform.
        scene_deg: largest rotation in degrees of a scene transform.
        scene_area: and its inliers must spread over at least this fraction of the frame (their
            bounding box): a scene fills the frame, an animal standing where it stood before
            does not.
    """

    k: int = 4
    normaliser: str = "kth"
    depth: int = 32
    shortlist: int = 3
    ransac_px: float = 20.0
    min_inliers: int = 4
    static_k: int = 10
    static_px: float = 8.0
    cross_k: int = 0
    scene_shift: float = 0.2
    scene_scale: float = 1.25
    scene_deg: float = 10.0
    scene_area: float = 0.3

    def check(self) -> None:
        if self.normaliser not in NORMALISERS:
            raise UsageError(f"normaliser '{self.normaliser}' is not one of {', '.join(NORMALISERS)}")
        if self.k < 1 or self.depth < self.k + 1:
            raise UsageError(f"LNBNN needs k >= 1 and depth >= k + 1 (k={self.k}, depth={self.depth})")


@dataclass
class LnbnnResult:
    """Identity scores ``names`` ``(Q, I)`` over ``labels`` (``-inf``: no image of that identity
    was compared), image scores ``frames`` ``(Q, G)`` (verified votes summed per image, the
    best image of an identity is what a lookup shows; ``-inf``: excluded) and, per query,
    the verified votes ``(query keypoint, gallery image, weight)``."""

    labels: np.ndarray
    names: np.ndarray
    frames: np.ndarray
    votes: list


def _stack(feats: list[LocalFeatures]):
    counts = np.array([len(f.xy) for f in feats], dtype=np.int64)
    owner = np.repeat(np.arange(len(feats)), counts)
    xy = (np.concatenate([f.xy for f in feats]) if feats else np.zeros((0, 2))).reshape(-1, 2).astype(np.float32)
    desc = (np.concatenate([f.descriptors for f in feats]) if feats else np.zeros((0, 128))).reshape(-1, 128)
    size = np.array([f.size for f in feats], dtype=np.int64).reshape(-1, 2)
    return xy, np.ascontiguousarray(desc, dtype=np.float32), owner, size, np.concatenate([[0], np.cumsum(counts)])


def _topk(q_desc: np.ndarray, g_desc, masks: list[np.ndarray | None], depth: int,
          block: int = 1024) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact Euclidean distances / gallery descriptor indices ``(len(q_desc), depth)`` of the
    nearest gallery descriptors, once per mask (``True`` = a gallery descriptor that must not
    be seen; ``None`` = all seen), from one similarity product per block of queries (-1: none).

    ``g_desc`` is a torch tensor (the product is torch's: several times faster on CPU than a
    FAISS flat index here, and it serves every mask at once)."""
    import torch

    n, ng = len(q_desc), int(g_desc.shape[0])
    outs = [(np.zeros((n, depth), np.float32), np.full((n, depth), -1, np.int64)) for _ in masks]
    if n == 0 or ng == 0:
        return outs
    cols = [None if m is None else torch.from_numpy(np.nonzero(m)[0]) for m in masks]
    kk = min(depth, ng)
    with torch.inference_mode():
        for a in range(0, n, block):
            sim = torch.from_numpy(np.ascontiguousarray(q_desc[a:a + block], np.float32)) @ g_desc.T
            for (dist, idx), c in zip(outs, cols):
                s = sim if c is None or not len(c) else sim.index_fill(1, c, -np.inf)
                top = torch.topk(s, kk, dim=1)
                v, i = top.values.numpy(), top.indices.numpy()
                ok = np.isfinite(v)
                dist[a:a + block, :kk] = np.where(ok, np.sqrt(np.maximum(2.0 - 2.0 * v, 0.0)), np.inf)
                idx[a:a + block, :kk] = np.where(ok, i, -1)
    return outs


@dataclass
class Neighbours:
    """Per query (and per mirrored query, if any): distances and gallery descriptor indices
    ``(n_descriptors, depth)`` of its nearest neighbours among the gallery descriptors it may
    see (-1: none), and the gallery's own neighbours (for background)."""

    query: list[tuple[np.ndarray, np.ndarray]]
    mirrored: list[tuple[np.ndarray, np.ndarray]] | None
    gallery_idx: np.ndarray  # (n_gallery_descriptors, depth + 1): neighbours within the gallery
    depth: int


_GALLERY_NN: OrderedDict[tuple, np.ndarray] = OrderedDict()
_GALLERY_NN_LOCK = threading.Lock()


def _gallery_neighbours(g_np: np.ndarray, g_desc, depth: int) -> np.ndarray:
    """The gallery's own neighbours (background evidence), remembered for the last two
    galleries: a lookup against an unchanged gallery does not search it again."""
    key = (hashlib.sha1(g_np.data).hexdigest(), len(g_np), depth)
    with _GALLERY_NN_LOCK:
        hit = _GALLERY_NN.get(key)
        if hit is not None:
            _GALLERY_NN.move_to_end(key)
            return hit
    found = _topk(g_np, g_desc, [None], depth)[0][1]
    with _GALLERY_NN_LOCK:
        _GALLERY_NN[key] = found
        while len(_GALLERY_NN) > 2:
            _GALLERY_NN.popitem(last=False)
    return found


def neighbours(queries: list[LocalFeatures], gallery: list[LocalFeatures], exclude: np.ndarray | None = None,
               depth: int = 32, mirrored: list[LocalFeatures] | None = None) -> Neighbours:
    """The costly part: every query descriptor searched exactly among the gallery descriptors
    its row of ``exclude`` allows (the excluded images are not in its index)."""
    return neighbour_sets(queries, gallery, [exclude], depth, mirrored)[0]


def neighbour_sets(queries: list[LocalFeatures], gallery: list[LocalFeatures], excludes: list,
                   depth: int = 32, mirrored: list[LocalFeatures] | None = None) -> list[Neighbours]:
    """:func:`neighbours` for several exclusion masks at the cost of one (e.g. leave one
    encounter out and leave one image out in one evaluation)."""
    import torch

    nq, ng = len(queries), len(gallery)
    excludes = [np.zeros((nq, ng), bool) if e is None else np.asarray(e, bool) for e in excludes]
    _, g_np, g_owner, _, g_off = _stack(gallery)
    g_desc = torch.from_numpy(g_np)
    self_query = queries is gallery
    if self_query:
        gallery_idx = np.zeros((len(g_np), depth + 1), np.int64)
    else:
        gallery_idx = _gallery_neighbours(g_np, g_desc, depth + 1)
    found: list[list] = [[None] * nq for _ in excludes]
    found_m: list[list] = [[None] * nq for _ in excludes]
    for i in range(nq):
        masks = [e[i][g_owner] for e in excludes]
        _, q_desc, _, _, _ = _stack([queries[i]])
        got = _topk(q_desc, g_desc, ([None] if self_query else []) + masks, max(depth, depth + self_query))
        if self_query:
            gallery_idx[g_off[i]:g_off[i + 1]] = got.pop(0)[1][:, :depth + 1]
        for n, (d, j) in enumerate(got):
            found[n][i] = (d[:, :depth], j[:, :depth])
        if mirrored is not None:
            _, m_desc, _, _, _ = _stack([mirrored[i]])
            for n, (d, j) in enumerate(_topk(m_desc, g_desc, masks, depth)):
                found_m[n][i] = (d, j)
    return [Neighbours(found[n], found_m[n] if mirrored is not None else None, gallery_idx, depth)
            for n in range(len(excludes))]


def _gallery_background(g_xy: np.ndarray, g_owner: np.ndarray, g_size: np.ndarray, gallery_idx: np.ndarray,
                        allowed: np.ndarray, config: LnbnnConfig, ids: np.ndarray,
                        stations: np.ndarray | None) -> np.ndarray:
    """Gallery descriptors that are scenery, judged among the allowed images only."""
    nb = gallery_idx
    ok = nb >= 0
    j = np.maximum(nb, 0)
    frame = g_owner[j]
    ok &= (frame != g_owner[:, None]) & allowed[frame]
    rank = np.cumsum(ok, axis=1)
    same = ok & (rank <= config.static_k) & (g_size[frame] == g_size[g_owner][:, None]).all(-1)
    same &= np.linalg.norm(g_xy[j] - g_xy[:, None, :], axis=-1) < config.static_px
    bg = same.any(axis=1)
    if config.cross_k > 0 and stations is not None:
        st = np.asarray(stations, dtype=object)
        cross = ok & (rank <= config.cross_k) & (ids[frame] != ids[g_owner][:, None])
        cross &= (st[frame] == st[g_owner][:, None]) & (st[g_owner][:, None] != "")
        bg |= cross.any(axis=1)
    return bg


def _votes(d: np.ndarray, nb: np.ndarray, usable: np.ndarray, g_ident: np.ndarray,  # per descriptor
           config: LnbnnConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, column, weight)`` of every LNBNN vote (rows: query descriptors, columns:
    neighbour slots among the first ``k`` usable ones)."""
    k = config.k
    rank = np.cumsum(usable, axis=1)
    voters = usable & (rank <= k)
    r, c = np.nonzero(voters)
    # too few usable neighbours: the farthest one fetched normalises
    farthest = np.where(np.isfinite(d) & (nb >= 0), d, -np.inf).max(axis=1)
    if config.normaliser == "kth":
        has = rank[:, -1] >= k + 1
        norm = np.where(has, d[np.arange(len(d)), np.argmax(rank >= k + 1, axis=1)], farthest)
        w = norm[r] - d[r, c]
    else:  # nearest usable neighbour of another identity than the voted one
        ident = np.where(usable, g_ident[np.maximum(nb, 0)], -1)
        other = usable[r] & (ident[r] != ident[r, c][:, None])
        first = np.argmax(other, axis=1)
        norm = np.where(other.any(axis=1), d[r, first], farthest[r])
        w = norm - d[r, c]
    return r, c, np.maximum(w, 0.0).astype(np.float64)


def _one_vote_per(keys_a: np.ndarray, keys_b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Indices keeping, for every ``(a, b)`` pair, its largest weight."""
    if not len(weight):
        return np.zeros(0, np.int64)
    order = np.lexsort((-weight, keys_b, keys_a))
    a, b = keys_a[order], keys_b[order]
    first = np.ones(len(order), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return order[first]


def _scene(q: LocalFeatures, d: np.ndarray, nb: np.ndarray, usable: np.ndarray, gallery_xy: np.ndarray,
           g_owner: np.ndarray, g_size: np.ndarray, config: LnbnnConfig) -> tuple[np.ndarray, np.ndarray]:
    """Query keypoints and gallery descriptors that are the same scene seen again: inliers of a
    near-identity similarity transform between the query and a same-size gallery image."""
    import cv2

    q_scene = np.zeros(len(d), bool)
    g_scene = np.zeros(len(gallery_xy), bool)
    j = np.maximum(nb, 0)
    cand = usable & (g_size[g_owner[j]] == np.asarray(q.size)).all(-1)
    r, c = np.nonzero(cand)
    if not len(r):
        return q_scene, g_scene
    frame = g_owner[j[r, c]]
    keep = _one_vote_per(r, frame, -d[r, c])  # the nearest neighbour of each keypoint per image
    r, c, frame = r[keep], c[keep], frame[keep]
    width = float(q.size[0])
    for f in np.unique(frame):
        m = np.nonzero(frame == f)[0]
        if len(m) < config.min_inliers:
            continue
        model, inl = cv2.estimateAffinePartial2D(q.xy[r[m]], gallery_xy[j[r[m], c[m]]], method=cv2.RANSAC,
                                                 ransacReprojThreshold=config.ransac_px, maxIters=2000,
                                                 confidence=0.995)
        if model is None or inl is None or int(inl.sum()) < config.min_inliers:
            continue
        scale = float(np.hypot(model[0, 0], model[1, 0]))
        angle = abs(float(np.degrees(np.arctan2(model[1, 0], model[0, 0]))))
        shift = float(np.hypot(model[0, 2], model[1, 2]))
        sel = m[inl.ravel().astype(bool)]
        span = q.xy[r[sel]].max(axis=0) - q.xy[r[sel]].min(axis=0)
        if (abs(np.log(max(scale, 1e-6))) <= np.log(config.scene_scale) and angle <= config.scene_deg
                and shift <= config.scene_shift * width
                and span[0] * span[1] >= config.scene_area * width * float(q.size[1])):
            q_scene[r[sel]] = True
            g_scene[j[r[sel], c[sel]]] = True
    return q_scene, g_scene


def _score_one(q: LocalFeatures, found: tuple[np.ndarray, np.ndarray], gallery_xy: np.ndarray,
               g_owner: np.ndarray, g_size: np.ndarray, col: np.ndarray, g_bg: np.ndarray,
               allowed: np.ndarray, n_labels: int, n_frames: int, config: LnbnnConfig):
    """Identity scores ``(I,)``, image scores ``(G,)`` and verified votes of one query."""
    import cv2

    names = np.zeros(n_labels)
    frames = np.zeros(n_frames)
    none = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
    d, nb = found
    if not len(d):
        return names, frames, none
    j = np.maximum(nb, 0)
    usable = (nb >= 0) & allowed[g_owner[j]]
    # static scene: the query descriptor sits where a near neighbour sits in a same-size frame
    ranked = np.cumsum(usable, axis=1) <= config.static_k
    same = usable & ranked & (g_size[g_owner[j]] == np.asarray(q.size)).all(-1)
    same &= np.linalg.norm(gallery_xy[j] - q.xy[:, None, :], axis=-1) < config.static_px
    usable &= ~same.any(axis=1)[:, None] & ~g_bg[j]
    if config.scene_shift > 0:
        q_scene, g_scene = _scene(q, d, nb, usable, gallery_xy, g_owner, g_size, config)
        usable &= ~q_scene[:, None] & ~g_scene[j]
    r, c, w = _votes(d, nb, usable, col[g_owner], config)
    pos = w > 0  # a neighbour no closer than the normaliser is no evidence (nor a RANSAC point)
    r, c, w = r[pos], c[pos], w[pos]
    frame = g_owner[j[r, c]]
    keep = _one_vote_per(r, frame, w)  # one vote per query descriptor per image
    r, c, w, frame = r[keep], c[keep], w[keep], frame[keep]
    if config.shortlist > 0:
        per_frame = np.bincount(frame, weights=w, minlength=n_frames)
        verified = np.zeros(len(w), bool)
        for ident in np.unique(col[frame]):
            cand = np.unique(frame[col[frame] == ident])
            cand = cand[np.argsort(-per_frame[cand], kind="stable")][:config.shortlist]
            for f in cand:
                m = np.nonzero(frame == f)[0]
                if len(m) < config.min_inliers:
                    continue
                model, inl = cv2.estimateAffinePartial2D(
                    q.xy[r[m]], gallery_xy[j[r[m], c[m]]], method=cv2.RANSAC,
                    ransacReprojThreshold=config.ransac_px, maxIters=2000, confidence=0.995)
                if model is None or inl is None:
                    continue
                inl = inl.ravel().astype(bool)
                if inl.sum() >= config.min_inliers:
                    verified[m[inl]] = True
        r, c, w, frame = r[verified], c[verified], w[verified], frame[verified]
    frames += np.bincount(frame, weights=w, minlength=n_frames)
    ident = col[frame]
    once = _one_vote_per(r, ident, w)  # one vote per query descriptor per identity
    names += np.bincount(ident[once], weights=w[once], minlength=n_labels)
    return names, frames, (r.astype(np.int32), frame.astype(np.int32), w.astype(np.float32))


def lnbnn_scores(queries: list[LocalFeatures], gallery: list[LocalFeatures], gallery_ids,
                 exclude: np.ndarray | None = None, config: LnbnnConfig = LnbnnConfig(),
                 gallery_stations=None, mirrored: list[LocalFeatures] | None = None,
                 found: Neighbours | None = None) -> LnbnnResult:
    """Identity and image scores of every query (see the module docstring).

    Args:
        exclude: boolean ``(Q, G)``: gallery images a query must not see at all.
        gallery_stations: station of every gallery image (for ``config.cross_k``).
        mirrored: the queries' mirrored features (same order), scored as well; each identity
            keeps the better of the two.
        found: neighbours from :func:`neighbours` (computed here when not given; pass them to
            score several settings without searching again; their depth must cover
            ``config.depth``).
    """
    config.check()
    ids = np.asarray(gallery_ids)
    labels = np.array(sorted(set(ids.tolist())))
    nq, ng = len(queries), len(gallery)
    exclude = np.zeros((nq, ng), bool) if exclude is None else np.asarray(exclude, bool)
    names = np.zeros((nq, len(labels)))
    frames = np.zeros((nq, ng))
    votes: list = [(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))] * nq
    if nq and ng:
        if found is None:
            found = neighbours(queries, gallery, exclude, config.depth, mirrored)
        elif found.depth < config.depth:
            raise UsageError(f"neighbours were fetched {found.depth} deep; the config needs {config.depth}")
        g_xy, _, g_owner, g_size, _ = _stack(gallery)
        col = np.searchsorted(labels, ids)  # identity (column of names) of every gallery image
        stations = None if gallery_stations is None else np.asarray(gallery_stations, dtype=object)
        background: dict[bytes, np.ndarray] = {}
        for i in range(nq):
            allowed = ~exclude[i]
            key = np.packbits(allowed).tobytes()
            if key not in background:
                background[key] = _gallery_background(g_xy, g_owner, g_size,
                                                      found.gallery_idx[:, :config.depth + 1],
                                                      allowed, config, ids, stations)
            sets = [(queries[i], found.query[i])]
            if mirrored is not None and found.mirrored is not None:
                sets.append((mirrored[i], found.mirrored[i]))
            for s, (q, (d, nb)) in enumerate(sets):
                n, f, v = _score_one(q, (d[:, :config.depth], nb[:, :config.depth]), g_xy, g_owner, g_size,
                                     col, background[key], allowed, len(labels), ng, config)
                if s == 0:
                    names[i], frames[i], votes[i] = n, f, v
                else:
                    names[i] = np.maximum(names[i], n)
                    frames[i] = np.maximum(frames[i], f)
    frames[exclude] = -np.inf
    for k in range(len(labels)):
        names[(exclude | (ids != labels[k])[None, :]).all(axis=1), k] = -np.inf
    return LnbnnResult(labels, names, frames, votes)
