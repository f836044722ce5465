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
   (``static_px``) of another same-size frame is background; for a query it is removed if that holds in *any* usable gallery frame (or, for a
   gallery keypoint, against the query or any usable gallery frame). This is what keeps two
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
        return cls(xy=np.asarray(arrays["xy"], dtype=np.float32).reshape(-1, 2),
                   descriptors=np.asarray(arrays["descriptors"], dtype=np.float32).reshape(-1, 128),
                   size=tuple(int(v) for v in arrays["size"]))


def extract(rgb: np.ndarray, config: LocalFeatureConfig = LocalFeatureConfig()) -> LocalFeatures:
    """Keypoints and RootSIFT descriptors of an RGB ``uint8`` image ``(H, W, 3)``."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = min(1.0, config.max_side / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    mask = np.full((h, w), 255, np.uint8)
    band = int(round(h * config.caption_mask))
    if band:
        mask[:band] = 0
        mask[h - band:] = 0
    if config.clahe_clip > 0:
        gray = cv2.createCLAHE(clipLimit=config.clahe_clip, tileGridSize=(8, 8)).apply(gray)
    keypoints, desc = cv2.SIFT_create(nfeatures=config.n_features).detectAndCompute(gray, mask)
    if desc is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (w, h))
    desc = desc.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-7
    desc = np.sqrt(desc)
    xy = np.array([k.pt for k in keypoints], dtype=np.float32)
    return LocalFeatures(xy=xy, descriptors=desc, size=(w, h))


def _knn(base: np.ndarray, queries: np.ndarray, k: int,
         config: LocalFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices ``(len(queries), k)`` of nearest ``base`` rows (-1: none)."""
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if len(base) <= config.exact_search_max:
        index = faiss.IndexFlatIP(128)
    else:  # inverted file: ~40x less work than exact search, same votes in practice
        n_lists = int(4 * np.sqrt(len(base)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(128), 128, n_lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(base), min(len(base), 40 * n_lists), False)
        index.train(base[np.sort(sample)])
        index.nprobe = config.ivf_probe
    index.add(base)
    sim, idx = index.search(queries, k)
    return np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0)).astype(np.float32), idx


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
    return np.nonzero(same & ok & (np.cumsum(ok, axis=1) <= static_k))


def score_matrix(queries: list[LocalFeatures], gallery: list[LocalFeatures],
                 config: LocalFeatureConfig = LocalFeatureConfig(),
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """``(len(queries), len(gallery))`` scores: higher = more likely the same animal, 0 = none.

    Args:
        exclude: optional boolean ``(Q, G)`` mask of pairs that must not be scored (a query
            against itself, or against its own capture event in leave-one-out tests); those
            cells are 0 and the excluded frames take no part in the query's scoring.
    """
    import cv2

    nq, ng = len(queries), len(gallery)
    out = np.zeros((nq, ng), dtype=np.float32)
    if nq == 0 or ng == 0:
        return out
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
        return out
    depth = min(config.search_depth, len(g_desc))
    dist, idx = _knn(g_desc, q_desc, depth, config)

    # Same-place neighbours, gallery against gallery and query against gallery.
    g_idx = idx if queries is gallery else _knn(g_desc, g_desc, depth, config)[1]
    g_frames, g_same = _same_place(g_idx, g_xy, g_owner, g_size, g_xy, g_owner, g_size,
                                   config.static_px)
    g_same &= g_frames != g_owner[:, None]
    q_frames, q_same = _same_place(idx, q_xy, q_owner, q_size, g_xy, g_owner, g_size,
                                   config.static_px)

    for i in range(nq):
        rows = np.arange(q_off[i], q_off[i + 1])
        allowed = ~exclude[i]
        if len(rows) == 0 or not allowed.any():
            continue
        qr, qc = _static_hits(q_frames[rows], q_same[rows], allowed, config.static_k)
        st_q = np.zeros((len(rows), ng), bool)
        st_q[qr, q_frames[rows][qr, qc]] = True
        duplicate = st_q.mean(axis=0) >= config.duplicate_frac
        evidence = allowed & ~duplicate
        q_bg = st_q[:, evidence].any(axis=1)
        # Gallery keypoints static against an evidence frame or the query are background.
        gr, gc = _static_hits(g_frames, g_same, allowed, config.static_k)
        g_bg = np.zeros(len(g_xy), bool)
        g_bg[gr[evidence[g_frames[gr, gc]]]] = True
        g_bg[g_idx[gr, gc][evidence[g_owner[gr]]]] = True
        to_query = idx[rows][qr, qc]
        g_bg[to_query[~duplicate[g_owner[to_query]]]] = True
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
    out[exclude] = 0.0
    return out


def match_score(a: LocalFeatures, b: LocalFeatures,
                config: LocalFeatureConfig = LocalFeatureConfig()) -> float:
    """Score of one pair (``score_matrix`` with a one-frame gallery; LNBNN then acts like a
    ratio test against ``b``'s own other descriptors)."""
    return float(score_matrix([a], [b], config)[0, 0])
