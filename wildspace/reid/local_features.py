"""Weight-free individual matching: RootSIFT, LNBNN votes with background removal, RANSAC.

Spotted and striped animals (snow leopards, tigers, leopards, giraffes) carry a coat pattern
that local features match across photos. This matcher needs no weights, so it works on any
offline machine; it scores whole camera-trap frames (no detector needed).

``extract`` (one image): grayscale, mask the caption bars (top/bottom strips), resize so the
long side is at most ``max_side`` px, strong CLAHE (night IR frames are dim and flat, so the
coat would otherwise get few keypoints), SIFT keypoints, RootSIFT descriptors.

``score_matrix`` (queries against a whole gallery, as in HotSpotter):

1. One nearest-neighbour search of every query descriptor among all gallery descriptors
   (exact for small galleries, a faiss inverted file for large ones).
2. Scene background: fixed cameras see the same rocks in every frame. A keypoint one of whose
   ``static_k`` nearest neighbours (counted over non-excluded frames) lies at the same place
   (``static_px``) of another same-size frame is background; for a query it is removed if that
   holds in *any* usable gallery frame (or, for a gallery keypoint, against the query or any
   usable gallery frame). This is what keeps two
   animals photographed by the same camera apart. A gallery frame in which almost all of the
   query is static is a copy of the query and is not used as background evidence.
3. LNBNN (local naive-Bayes nearest neighbour): each query descriptor votes for the frames of
   its ``knn`` nearest usable gallery descriptors, weight ``d_(knn+1) - d``: a match counts
   only as much as it is closer than the crowd, so common textures (grass, rock) score little.
4. Spatial verification per gallery frame: RANSAC similarity transform on its votes; the score
   is the summed weight of the inliers (0 with fewer than ``min_inliers``).

Excluded gallery frames take no part in a query's scoring (neither as candidates, nor as
LNBNN competitors, nor as background evidence, nor in neighbour ranks), so leave-one-out
evaluations are honest. Limits: a still animal in two frames of one camera looks like
background; frames whose descriptors fall beyond ``search_depth`` are not seen.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalFeatureConfig:
    """Matcher settings (pixel values refer to the resized image).

    Attributes:
        max_side: long side in px the image is resized to before SIFT.
        n_features: keep at most this many keypoints (strongest first).
        caption_mask: fraction of the height blanked at the top and at the bottom (camera
            captions: date, temperature, logo), so the matcher does not match text.
        clahe_clip: CLAHE clip limit (0 disables contrast equalisation).
        knn: LNBNN neighbours that vote per query descriptor (the next one is the baseline).
        search_depth: neighbours fetched per descriptor; excluded and background ones are
            skipped, the rest must hold ``knn + 1`` usable ones.
        static_k: how many nearest neighbours are checked for a same-place (static) match.
        static_px: a neighbour within this many px of the same place in a same-size frame is
            static scene background.
        duplicate_frac: a gallery frame where at least this fraction of the query keypoints is
            static is a copy of the query, not background evidence.
        ransac_px: RANSAC reprojection threshold in px (loose: bodies bend).
        min_inliers: fewer verified matches than this scores 0.
        ratio: Lowe ratio threshold (unused since LNBNN replaced the ratio test; kept so
            stored configs still load).
        cross_k: with gallery identities and stations given to ``score_matrix``, a gallery
            keypoint matching another identity's frame of the same station among its
            ``cross_k`` nearest neighbours is background (0: off).
        chip_side: long side in px of an animal chip (an image with a box) before SIFT.
        chip_upscale: a chip is enlarged at most this many times.
        chip_margin: fraction of the box added on every side of a chip.
        exact_search_max: galleries with at most this many descriptors are searched exactly.
        ivf_probe: inverted lists visited per descriptor in larger galleries.
    """

    max_side: int = 1024
    n_features: int = 2500
    caption_mask: float = 0.06
    clahe_clip: float = 4.0
    knn: int = 3
    search_depth: int = 100
    static_k: int = 10
    static_px: float = 8.0
    duplicate_frac: float = 0.95
    ransac_px: float = 20.0
    min_inliers: int = 4
    ratio: float = 0.8
    cross_k: int = 0
    chip_side: int = 800
    chip_upscale: float = 2.0
    chip_margin: float = 0.15
    exact_search_max: int = 30000
    ivf_probe: int = 48


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints and RootSIFT descriptors of one image.

    Attributes:
        xy: ``(N, 2)`` float32 keypoint positions in px of the resized image.
        descriptors: ``(N, 128)`` float32 RootSIFT descriptors (unit L2 norm).
        size: ``(width, height)`` of the resized image in px.
    """

    xy: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"xy": self.xy, "descriptors": self.descriptors.astype(np.float16),
                "size": np.asarray(self.size, dtype=np.int32)}

    @classmethod
    def from_arrays(cls, arrays) -> "LocalFeatures":
        width, height = (int(v) for v in arrays["size"])
        return cls(xy=np.asarray(arrays["xy"], dtype=np.float32).reshape(-1, 2),
                   descriptors=np.asarray(arrays["descriptors"], dtype=np.float32).reshape(-1, 128),
                   size=(width, height))


def extract(rgb: np.ndarray, config: LocalFeatureConfig = LocalFeatureConfig(),
            bbox=None, mirror: bool = False) -> LocalFeatures:
    """Keypoints and RootSIFT descriptors of an RGB ``uint8`` image ``(H, W, 3)``.

    Args:
        bbox: optional animal box ``(x, y, w, h)`` normalised: keypoints come from that box
            (plus ``config.chip_margin``) only, taken from a chip resized so its long side is
            ``config.chip_side`` px (at most ``config.chip_upscale`` times enlarged), so a
            small animal's coat gets keypoints at its own scale. Positions stay in the
            resized *frame's* pixels, so static-background removal still compares places.
        mirror: describe the left-right mirrored image (positions mapped back to the
            original), for matching a flank seen the other way round.
    """
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if mirror:
        gray = np.ascontiguousarray(gray[:, ::-1])
    fh, fw = gray.shape
    frame_scale = min(1.0, config.max_side / max(fh, fw))
    x0 = y0 = 0
    if bbox is not None:
        bx, by, bw, bh = (float(v) for v in bbox)
        if mirror:
            bx = 1.0 - bx - bw
        m = config.chip_margin
        x0, y0 = max(0, int((bx - m * bw) * fw)), max(0, int((by - m * bh) * fh))
        x1, y1 = min(fw, int(np.ceil((bx + bw * (1 + m)) * fw))), min(fh, int(np.ceil((by + bh * (1 + m)) * fh)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            x0 = y0 = 0
            bbox = None
        else:
            gray = gray[y0:y1, x0:x1]
    h, w = gray.shape
    scale = (min(config.chip_upscale, config.chip_side / max(h, w)) if bbox is not None
             else frame_scale)
    if scale != 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    h, w = gray.shape
    mask = np.full((h, w), 255, np.uint8)
    band = config.caption_mask * fh  # caption bars, in original frame rows
    rows = y0 + (np.arange(h) + 0.5) / scale
    mask[(rows < band) | (rows > fh - band)] = 0
    if config.clahe_clip > 0:
        gray = cv2.createCLAHE(clipLimit=config.clahe_clip, tileGridSize=(8, 8)).apply(gray)
    keypoints, desc = cv2.SIFT.create(nfeatures=config.n_features).detectAndCompute(gray, mask)
    size = (max(1, round(fw * frame_scale)), max(1, round(fh * frame_scale)))
    if desc is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), size)
    root = np.array(desc, dtype=np.float32)  # RootSIFT: L1-normalise, then square root
    root /= root.sum(axis=1, keepdims=True) + 1e-7
    root = np.sqrt(root)
    xy = np.array([k.pt for k in keypoints], dtype=np.float32) / scale + np.array([x0, y0], dtype=np.float32)
    if mirror:
        xy[:, 0] = fw - xy[:, 0]
    xy *= frame_scale
    return LocalFeatures(xy=xy.astype(np.float32), descriptors=root, size=size)


def _knn(base: np.ndarray, queries: np.ndarray, k: int,
         config: LocalFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices ``(len(queries), k)`` of nearest ``base`` rows (-1: none)."""
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index: faiss.Index
    if len(base) <= config.exact_search_max:
        index = faiss.IndexFlatIP(128)
    else:  # inverted file: ~40x less work than exact search, same votes in practice
        n_lists = int(4 * np.sqrt(len(base)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(128), 128, n_lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(base), min(len(base), 40 * n_lists), False)
        ivf.train(base[np.sort(sample)])
        ivf.nprobe = config.ivf_probe
        index = ivf
    index.add(base)
    sim, idx = index.search(queries, k)
    return np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0)).astype(np.float32), idx


_SELF_KNN: "OrderedDict[tuple, tuple[np.ndarray, np.ndarray]]" = OrderedDict()
_SELF_KNN_LOCK = threading.Lock()
_SELF_KNN_MAX = 400_000  # descriptors (~1.2 GB for two remembered galleries at depth 100)


def _gallery_knn(g_desc: np.ndarray, depth: int, config: LocalFeatureConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of every gallery descriptor's neighbours in the gallery (the
    costly part of a lookup), remembered for the last two galleries of at most
    ``_SELF_KNN_MAX`` descriptors: lookups against an unchanged gallery do not search it again."""
    if len(g_desc) > _SELF_KNN_MAX:
        return _knn(g_desc, g_desc, depth, config)
    key = (hashlib.sha1(np.ascontiguousarray(g_desc, np.float32).data).hexdigest(), len(g_desc), depth,
           config.exact_search_max, config.ivf_probe)
    with _SELF_KNN_LOCK:
        hit = _SELF_KNN.get(key)
        if hit is not None:
            _SELF_KNN.move_to_end(key)
            return hit
    found = _knn(g_desc, g_desc, depth, config)
    with _SELF_KNN_LOCK:
        _SELF_KNN[key] = found
        while len(_SELF_KNN) > 2:
            _SELF_KNN.popitem(last=False)
    return found


def _same_place(idx: np.ndarray, q_xy: np.ndarray, q_owner: np.ndarray, q_size: np.ndarray,
                g_xy: np.ndarray, g_owner: np.ndarray, g_size: np.ndarray,
                static_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour frames ``(N, k)`` (-1: none) and whether each neighbour sits at the same place
    of a same-size frame (a static-scene candidate)."""
    ok = idx >= 0
    j = np.where(ok, idx, 0)
    frames = np.where(ok, g_owner[j], -1)
    same = ok & (g_size[g_owner[j]] == q_size[q_owner][:, None]).all(-1)
    same &= np.linalg.norm(g_xy[j] - q_xy[:, None, :], axis=-1) < static_px
    return frames, same


def _static_hits(frames: np.ndarray, same: np.ndarray, usable_frame: np.ndarray,
                 static_k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` of same-place neighbours among each row's ``static_k`` nearest neighbours
    in usable frames (ranks skip excluded frames, so those take no part)."""
    ok = (frames >= 0) & usable_frame[np.maximum(frames, 0)]
    rows, cols = np.nonzero(same & ok & (np.cumsum(ok, axis=1) <= static_k))
    return rows, cols


def score_matrix(queries: list[LocalFeatures], gallery: list[LocalFeatures],
                 config: LocalFeatureConfig = LocalFeatureConfig(),
                 exclude: np.ndarray | None = None, return_votes: bool = False,
                 gallery_ids=None, gallery_stations=None):
    """``(len(queries), len(gallery))`` scores: higher = more likely the same animal, 0 = none.

    Args:
        exclude: optional boolean ``(Q, G)`` mask of pairs that must not be scored (a query
            against itself, or against its own capture event in leave-one-out tests); those
            cells are 0 and the excluded frames take no part in the query's scoring.
        return_votes: also return, per query, the verified votes ``(keypoint, frame, weight)``
            (three equal-length arrays: query keypoint index, gallery frame, LNBNN weight of
            each RANSAC inlier), which :mod:`wildspace.reid.pooling` pools per identity.
        gallery_ids, gallery_stations: identity and station of every gallery frame; with
            ``config.cross_k`` > 0, a gallery keypoint one of whose ``cross_k`` nearest usable
            neighbours lies in a frame of *another* identity at the *same* station is scene
            background, wherever it sits (a camera that moved a little between visits).
    """
    import cv2

    nq, ng = len(queries), len(gallery)
    out = np.zeros((nq, ng), dtype=np.float32)
    votes = [_NO_VOTES] * nq

    def done():
        out[exclude] = 0.0
        return (out, votes) if return_votes else out

    if nq == 0 or ng == 0:
        return (out, votes) if return_votes else out
    exclude = np.zeros((nq, ng), bool) if exclude is None else np.asarray(exclude, bool)

    def stack(feats):
        counts = np.array([len(f.xy) for f in feats])
        owner = np.repeat(np.arange(len(feats)), counts)
        xy = np.concatenate([f.xy for f in feats]).reshape(-1, 2).astype(np.float32)
        desc = np.concatenate([f.descriptors for f in feats]).reshape(-1, 128)
        size = np.array([f.size for f in feats], dtype=np.int64).reshape(-1, 2)
        return xy, desc, owner, size, np.concatenate([[0], np.cumsum(counts)])

    g_xy, g_desc, g_owner, g_size, _ = stack(gallery)
    q_xy, q_desc, q_owner, q_size, q_off = stack(queries)
    k = config.knn
    if len(g_desc) < k + 1 or len(q_desc) == 0:
        return done()
    depth = min(config.search_depth, len(g_desc))
    dist, idx = (_gallery_knn(g_desc, depth, config) if queries is gallery
                 else _knn(g_desc, q_desc, depth, config))

    # Same-place neighbours, gallery against gallery and query against gallery.
    g_idx = idx if queries is gallery else _gallery_knn(g_desc, depth, config)[1]
    g_frames, g_same = _same_place(g_idx, g_xy, g_owner, g_size, g_xy, g_owner, g_size,
                                   config.static_px)
    g_same &= g_frames != g_owner[:, None]
    q_frames, q_same = _same_place(idx, q_xy, q_owner, q_size, g_xy, g_owner, g_size,
                                   config.static_px)
    cross = None
    if config.cross_k > 0 and gallery_ids is not None and gallery_stations is not None:
        gid, gst = np.asarray(gallery_ids), np.asarray(gallery_stations, dtype=object)
        f0 = np.maximum(g_frames, 0)
        cross = ((g_frames >= 0) & (gid[f0] != gid[g_owner][:, None])
                 & (gst[f0] == gst[g_owner][:, None]) & (gst[f0] != ""))

    for i in range(nq):
        rows = np.arange(q_off[i], q_off[i + 1])
        allowed = ~exclude[i]
        if len(rows) == 0 or not allowed.any():
            continue
        qr, qc = _static_hits(q_frames[rows], q_same[rows], allowed, config.static_k)
        st_q = np.zeros((len(rows), ng), bool)
        st_q[qr, q_frames[rows][qr, qc]] = True
        duplicate = np.asarray(st_q.mean(axis=0) >= config.duplicate_frac)
        evidence = allowed & ~duplicate
        q_bg = np.asarray(st_q[:, evidence].any(axis=1))
        # Gallery keypoints static against an evidence frame or the query are background.
        gr, gc = _static_hits(g_frames, g_same, allowed, config.static_k)
        g_bg = np.zeros(len(g_xy), bool)
        g_bg[gr[evidence[g_frames[gr, gc]]]] = True
        g_bg[g_idx[gr, gc][evidence[g_owner[gr]]]] = True
        to_query = idx[rows][qr, qc]
        g_bg[to_query[~duplicate[g_owner[to_query]]]] = True
        if cross is not None:
            cr, cc = _static_hits(g_frames, cross, allowed, config.cross_k)
            g_bg[cr[evidence[g_frames[cr, cc]] & evidence[g_owner[cr]]]] = True
        nb, d = idx[rows], dist[rows]
        usable = (nb >= 0) & ~q_bg[:, None]
        nb0 = np.where(nb >= 0, nb, 0)
        usable &= allowed[g_owner[nb0]] & ~g_bg[nb0]
        rank = np.cumsum(usable, axis=1)
        # Baseline distance: the (k+1)-th usable neighbour, else the farthest one fetched.
        has = rank[:, -1] >= k + 1
        baseline = np.where(has, d[np.arange(len(rows)), np.argmax(rank >= k + 1, axis=1)],
                            d[:, -1])
        r_, c_ = np.nonzero(usable & (rank <= k))
        frame = g_owner[nb0[r_, c_]]
        _, first = np.unique(r_ * ng + frame, return_index=True)  # one vote per frame
        r_, c_, frame = r_[first], c_[first], frame[first]
        weight = np.maximum(baseline[r_] - d[r_, c_], 0.0)
        kept = []
        for j in np.unique(frame):
            m = frame == j
            if m.sum() < config.min_inliers:
                continue
            pa, pb = q_xy[rows[r_[m]]], g_xy[nb0[r_[m], c_[m]]]
            model, inliers = cv2.estimateAffinePartial2D(
                pa, pb, method=cv2.RANSAC, ransacReprojThreshold=config.ransac_px,
                maxIters=2000, confidence=0.995)
            if model is None or inliers is None:
                continue
            inliers = inliers.ravel().astype(bool)
            if inliers.sum() >= config.min_inliers:
                out[i, j] = float(weight[m][inliers].sum())
                kept.append(np.nonzero(m)[0][inliers])
        if kept:
            sel = np.concatenate(kept)
            votes[i] = (r_[sel].astype(np.int32), frame[sel].astype(np.int32),
                        weight[sel].astype(np.float32))
    return done()


_NO_VOTES = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))


def match_score(a: LocalFeatures, b: LocalFeatures,
                config: LocalFeatureConfig = LocalFeatureConfig()) -> float:
    """Score of one pair (``score_matrix`` with a one-frame gallery; LNBNN then acts like a
    ratio test against ``b``'s own other descriptors)."""
    return float(score_matrix([a], [b], config)[0, 0])
