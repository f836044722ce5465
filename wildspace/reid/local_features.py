"""Weight-free individual matching: RootSIFT keypoints, ratio test, geometric verification.

Spotted and striped animals (snow leopards, tigers, leopards, giraffes) carry a coat pattern
that local features match across photos. This matcher needs no weights, so it works on any
offline machine, and it re-ranks an embedding shortlist when an embedder is available.

Pipeline for one pair of images ``a`` and ``b``:

1. ``extract``: grayscale, mask the camera's caption bars (top/bottom strips), resize so the
   long side is at most ``max_side`` px, CLAHE contrast, SIFT keypoints; descriptors are turned
   into RootSIFT (L1-normalise, square root), which matches better than raw SIFT.
2. ``match``: two nearest neighbours per descriptor of ``a`` in ``b``; keep a match when the
   best is clearly better than the second (Lowe's ratio test, ``ratio``), both ways (mutual).
3. Drop *static* matches: a fixed camera sees the same rocks in every frame; points that sit at
   the same place in both frames (displacement below ``static_px``) are background, not coat.
4. Geometric verification: a RANSAC similarity/affine model; the score is the number of inlier
   matches (0 when fewer than ``min_inliers``).

Scores are counts (0, 1, 2, …); higher means more of the pattern agrees.
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
        ratio: Lowe ratio-test threshold.
        static_px: matches that moved less than this many px are dropped as static background.
        ransac_px: RANSAC reprojection threshold in px.
        min_inliers: fewer verified matches than this scores 0.
    """

    max_side: int = 1024
    n_features: int = 2500
    caption_mask: float = 0.06
    ratio: float = 0.8
    static_px: float = 6.0
    ransac_px: float = 12.0
    min_inliers: int = 6


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints and RootSIFT descriptors of one image.

    Attributes:
        xy: ``(N, 2)`` float32 keypoint positions in px of the resized image.
        descriptors: ``(N, 128)`` float32 RootSIFT descriptors.
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
        return cls(xy=np.asarray(arrays["xy"], dtype=np.float32),
                   descriptors=np.asarray(arrays["descriptors"], dtype=np.float32),
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
    gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    sift = cv2.SIFT_create(nfeatures=config.n_features)
    keypoints, desc = sift.detectAndCompute(gray, mask)
    if desc is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (w, h))
    desc = desc.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-7
    desc = np.sqrt(desc)
    xy = np.array([k.pt for k in keypoints], dtype=np.float32)
    return LocalFeatures(xy=xy, descriptors=desc, size=(w, h))


def _two_nearest(queries: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``(N, 2)`` and indices ``(N, 2)`` of each query's two nearest base rows."""
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    sim, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), 2)
    return np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0)), idx


def _mutual_ratio_matches(da: np.ndarray, db: np.ndarray, ratio: float) -> np.ndarray:
    """Index pairs ``(i, j)`` that pass the ratio test in both directions.

    RootSIFT descriptors have unit L2 norm, so inner products give the distances.
    """
    if len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    d_ab, i_ab = _two_nearest(da, db)
    d_ba, i_ba = _two_nearest(db, da)
    ok_a = d_ab[:, 0] < ratio * d_ab[:, 1]
    ok_b = d_ba[:, 0] < ratio * d_ba[:, 1]
    i = np.nonzero(ok_a)[0]
    j = i_ab[i, 0]
    keep = ok_b[j] & (i_ba[j, 0] == i)
    return np.stack([i[keep], j[keep]], axis=1)


def match_score(a: LocalFeatures, b: LocalFeatures,
                config: LocalFeatureConfig = LocalFeatureConfig()) -> int:
    """Number of geometrically verified, non-static, mutual ratio-test matches (0 if too few)."""
    import cv2

    if len(a.xy) < 2 or len(b.xy) < 2:
        return 0
    pairs = _mutual_ratio_matches(a.descriptors, b.descriptors, config.ratio)
    if len(pairs) < config.min_inliers:
        return 0
    ia, ib = pairs[:, 0], pairs[:, 1]
    pa, pb = a.xy[ia], b.xy[ib]
    if a.size == b.size and config.static_px > 0:
        pa, pb = _drop_background(pa, pb, a.size, config)
    if len(pa) < config.min_inliers:
        return 0
    _, inliers = cv2.estimateAffine2D(pa, pb, method=cv2.RANSAC,
                                      ransacReprojThreshold=config.ransac_px,
                                      maxIters=2000, confidence=0.995)
    n = int(inliers.sum()) if inliers is not None else 0
    return n if n >= config.min_inliers else 0


def _drop_background(pa: np.ndarray, pb: np.ndarray, size: tuple[int, int],
                     config: LocalFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Remove matches that belong to the static scene of a fixed camera.

    Points that did not move are background. A camera nudged between visits moves its whole
    scene by one near-identity transform: fit one (RANSAC, tight threshold) and, if it is close
    to identity, drop its inliers too. What is left is what moved: the animal.
    """
    import cv2

    moving = np.linalg.norm(pa - pb, axis=1) >= config.static_px
    pa, pb = pa[moving], pb[moving]
    if len(pa) < config.min_inliers:
        return pa, pb
    m, inl = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC,
                                         ransacReprojThreshold=config.static_px,
                                         maxIters=1000, confidence=0.99)
    if m is None or inl is None or int(inl.sum()) < config.min_inliers:
        return pa, pb
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    angle = abs(float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))))
    shift = float(np.hypot(m[0, 2], m[1, 2])) / max(size)
    if abs(scale - 1.0) < 0.05 and angle < 3.0 and shift < 0.08:
        keep = inl.ravel() == 0
        return pa[keep], pb[keep]
    return pa, pb


def score_matrix(queries: list[LocalFeatures], gallery: list[LocalFeatures],
                 config: LocalFeatureConfig = LocalFeatureConfig(),
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """``(len(queries), len(gallery))`` match scores (higher = more of the pattern agrees).

    Args:
        exclude: optional boolean ``(Q, G)`` mask of pairs that must not be scored (a query
            against itself, or against its own capture event in leave-one-out tests); those
            cells are 0 and the excluded images take no part in the query's scoring.
    """
    out = np.zeros((len(queries), len(gallery)), dtype=np.float32)
    same = queries is gallery
    for i, q in enumerate(queries):
        for j, g in enumerate(gallery):
            if exclude is not None and exclude[i, j]:
                continue
            if same and j < i and (exclude is None or not exclude[j, i]):
                out[i, j] = out[j, i]  # matching is symmetric: reuse the other half
                continue
            out[i, j] = match_score(q, g, config)
    return out
