"""Learned local features for individual matching: ALIKED keypoints matched by LightGlue.

RootSIFT with LNBNN (:mod:`wildspace.reid.local_features`) finds the same burst but not the
same cat on another night: at night, in snow or at a new angle the coat's gradients change more
than SIFT tolerates. ALIKED (Zhao et al. 2023) learns keypoints and 128-d descriptors that hold
across such changes, and LightGlue (Lindenberger et al. 2023) matches two images' keypoints with
a transformer that sees their layout, not only their descriptors. Both run through kornia, from
weights fetched and verified like every other model (specs ``aliked-n16`` and
``lightglue-aliked``).

``extract`` (one image): an animal chip (a detector or table box, already cut with its margin)
as it is, a whole frame without its caption bars (top and bottom strips); resized so the long
side is ``max_side`` px; the ``keypoints`` strongest ALIKED keypoints kept.

``pair_score`` (two images): LightGlue's matches, less the **static scenery**: fixed cameras see
the same rocks in every frame, so in two same-size frames of one station a match whose two ends
lie within ``static_frac`` of the image diagonal of each other is background, not the animal.
The score is the number of matches left (a count, calibrated on a log scale).

``score_matrix`` (queries against a gallery) runs each pair once: when the queries are the
gallery (evaluation), the upper triangle is matched and mirrored; excluded pairs are never run.
Features are cached by content hash (pixels, box, settings, weights) under
``$WILDSPACE_HOME/cache/reid-learned``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from wildspace.errors import WildspaceError
from wildspace.hub.specs import ModelSpec
from wildspace.reid.feature_cache import FeatureCache, content_key

ALIKED_ARCHS = ("aliked-t16", "aliked-n16", "aliked-n16rot", "aliked-n32")
VERSION = 1  # bump when extract() changes what it returns


class LearnedError(WildspaceError, ValueError):
    """A spec or weight file cannot make the learned matcher (the message says why)."""


@dataclass(frozen=True)
class LearnedConfig:
    """Settings of the learned matcher (pixel values refer to the resized image).

    Attributes:
        max_side: long side in px an image (or animal chip) is resized to.
        keypoints: the strongest ALIKED keypoints kept per image.
        caption_mask: fraction of the height cut at the top and at the bottom (camera captions).
        static_frac: in two same-size frames of one station, a match whose ends are closer
            than this fraction of the diagonal is static scenery (0: keep every match).
        filter_threshold: LightGlue's match confidence threshold.
    """

    max_side: int = 1024
    keypoints: int = 1024
    caption_mask: float = 0.06
    static_frac: float = 0.01
    filter_threshold: float = 0.1


@dataclass
class LearnedFeatures:
    """One image's keypoints (``(N, 2)`` x, y in resized px), descriptors ``(N, D)``, and the
    resized size ``(width, height)``."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"keypoints": self.keypoints.astype(np.float32),
                "descriptors": self.descriptors.astype(np.float32),
                "size": np.asarray(self.size, np.int64)}

    @classmethod
    def from_arrays(cls, z) -> LearnedFeatures:
        kp, desc, size = np.asarray(z["keypoints"]), np.asarray(z["descriptors"]), np.asarray(z["size"])
        if kp.ndim != 2 or kp.shape[1] != 2 or desc.ndim != 2 or len(desc) != len(kp) or size.shape != (2,):
            raise ValueError("malformed learned features")
        return cls(kp.astype(np.float32), desc.astype(np.float32), (int(size[0]), int(size[1])))


def static_matches(kp0: np.ndarray, kp1: np.ndarray, size: tuple[int, int], frac: float) -> np.ndarray:
    """``True`` for each matched pair ``(kp0[i], kp1[i])`` whose ends lie within ``frac`` of the
    image diagonal of each other (the same place of two same-size frames)."""
    if frac <= 0 or not len(kp0):
        return np.zeros(len(kp0), dtype=bool)
    diag = float(np.hypot(*size))
    return np.linalg.norm(np.asarray(kp0, float) - np.asarray(kp1, float), axis=1) < frac * diag


def moved_scene(kp0: np.ndarray, kp1: np.ndarray, size: tuple[int, int], tol: float = 0.01,
                max_shift: float = 0.2, max_scale: float = 1.25, max_rotation: float = 10.0,
                min_spread: float = 0.3) -> np.ndarray:
    """``True`` for the matches that are scenery seen by a camera re-mounted between visits:
    the inliers (within ``tol`` of the diagonal) of a near-identity similarity transform
    (shift under ``max_shift`` of the frame, scale within ``max_scale``, rotation under
    ``max_rotation`` degrees) whose points spread over at least ``min_spread`` of the frame's
    width and height. An animal that moved between two nights does not fit one such
    transform over that much of the frame."""
    import cv2

    n = len(kp0)
    none = np.zeros(n, dtype=bool)
    if n < 8:
        return none
    w, h = size
    a = np.asarray(kp0, np.float32).reshape(-1, 1, 2)
    b = np.asarray(kp1, np.float32).reshape(-1, 1, 2)
    m, inl = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC,
                                         ransacReprojThreshold=tol * float(np.hypot(w, h)),
                                         maxIters=500, confidence=0.99, refineIters=0)
    if m is None or inl is None:
        return none
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    angle = abs(float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))))
    inliers = inl.ravel().astype(bool)
    if (inliers.sum() < 8 or abs(m[0, 2]) > max_shift * w or abs(m[1, 2]) > max_shift * h
            or not 1 / max_scale <= scale <= max_scale or angle > max_rotation):
        return none
    pts = np.asarray(kp0, float)[inliers]
    spread = np.ptp(pts, axis=0) / np.array([w, h], float)
    return inliers if (spread >= min_spread).all() else none


def prepare(rgb: np.ndarray, config: LearnedConfig, chip: bool = False) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 image ALIKED sees: an animal chip as it is, or a whole frame
    without its caption bars; resized to a ``max_side`` long side."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if not chip:
        cut = int(round(config.caption_mask * h))
        if h - 2 * cut >= 8:
            rgb = rgb[cut:h - cut]
    h, w = rgb.shape[:2]
    scale = config.max_side / max(h, w)
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BILINEAR))


class LearnedMatcher:
    """ALIKED + LightGlue with their settings; ``weights_id`` names the weights (cache key)."""

    def __init__(self, aliked, lightglue, config: LearnedConfig = LearnedConfig(),
                 weights_id: str = "", cache_dir: Path | None = None):
        self.aliked = aliked.eval()
        self.lightglue = lightglue.eval()
        self.config = config
        self.weights_id = weights_id
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.cache = FeatureCache(self.cache_dir, LearnedFeatures)
        self.pairs_run = 0

    # -- features -----------------------------------------------------------------------
    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    def feature_key(self, rgb: np.ndarray, chip: bool = False) -> str:
        c = asdict(self.config)
        settings = {k: c[k] for k in ("max_side", "keypoints", "caption_mask")}
        return content_key(rgb, [VERSION, self.weights_id, settings, bool(chip)])

    def extract(self, rgb: np.ndarray, chip: bool = False) -> LearnedFeatures:
        """ALIKED keypoints and descriptors of one image or animal chip (cached by content)."""
        import torch

        key = self.feature_key(rgb, chip)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        self.cache.misses += 1
        img = prepare(rgb, self.config, chip)
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255)[None]
        with torch.inference_mode():
            out = self.aliked(x)[0]
        feats = LearnedFeatures(out.keypoints.float().numpy(), out.descriptors.float().numpy(),
                                (img.shape[1], img.shape[0]))
        self.cache.put(key, feats)
        return feats

    def extract_many(self, images, chips=None) -> list[LearnedFeatures]:
        """Features of every image, in order (torch uses every core inside each image)."""
        images = list(images)
        chips = [False] * len(images) if chips is None else list(chips)
        return [self.extract(im, c) for im, c in zip(images, chips)]

    # -- matching -----------------------------------------------------------------------
    def matches(self, a: LearnedFeatures, b: LearnedFeatures) -> tuple[np.ndarray, np.ndarray]:
        """LightGlue's ``(M, 2)`` index pairs into ``a`` and ``b`` and their confidences."""
        import torch

        if not len(a.keypoints) or not len(b.keypoints):
            return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)

        def side(f: LearnedFeatures) -> dict:
            return {"keypoints": torch.from_numpy(f.keypoints)[None],
                    "descriptors": torch.from_numpy(f.descriptors)[None],
                    "image_size": torch.tensor([f.size], dtype=torch.float32)}

        with torch.inference_mode():
            out = self.lightglue({"image0": side(a), "image1": side(b)})
        self.pairs_run += 1
        idx = out["matches"][0].numpy().astype(np.int64)
        conf = out["scores"][0].float().numpy()
        return idx.reshape(-1, 2), conf.reshape(-1)

    def pair_score(self, a: LearnedFeatures, b: LearnedFeatures, same_place: bool) -> float:
        """Matches left once static scenery is removed (``same_place``: one station, one size)."""
        idx, _ = self.matches(a, b)
        if not len(idx):
            return 0.0
        if same_place:
            static = static_matches(a.keypoints[idx[:, 0]], b.keypoints[idx[:, 1]], a.size,
                                    self.config.static_frac)
            return float(np.count_nonzero(~static))
        return float(len(idx))

    def score_matrix(self, queries: list[LearnedFeatures], gallery: list[LearnedFeatures],
                     exclude: np.ndarray | None = None, query_stations=None, gallery_stations=None,
                     symmetric: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """``(Q, G)`` pair scores, ``-inf`` where excluded. ``symmetric``: the queries are the
        gallery, so each unordered pair is matched once (the diagonal is never run)."""
        nq, ng = len(queries), len(gallery)
        if symmetric and nq != ng:
            raise LearnedError("symmetric scoring needs the queries to be the gallery")
        skip = np.zeros((nq, ng), bool) if exclude is None else np.asarray(exclude, bool)
        qs = [""] * nq if query_stations is None else list(query_stations)
        gs = [""] * ng if gallery_stations is None else list(gallery_stations)
        out = np.full((nq, ng), -np.inf)
        todo = [(i, j) for i in range(nq) for j in range(ng)
                if not (symmetric and j <= i) and not (skip[i, j] and (not symmetric or skip[j, i]))]
        if symmetric:
            todo = [(i, j) for i, j in todo if i != j]
        for n, (i, j) in enumerate(todo):
            a, b = queries[i], gallery[j]
            same_place = bool(qs[i]) and qs[i] == gs[j] and a.size == b.size
            s = self.pair_score(a, b, same_place)
            out[i, j] = s
            if symmetric:
                out[j, i] = s
            if progress is not None:
                progress(n + 1, len(todo))
        out[skip] = -np.inf
        return out


# -- building from specs ------------------------------------------------------------------
def _rename_lightglue(state: dict) -> dict:
    """cvg/LightGlue's published layout (``self_attn.i``) -> kornia's (``transformers.i.self_attn``)."""
    out = {}
    for k, v in state.items():
        for part in ("self_attn", "cross_attn"):
            if k.startswith(part + "."):
                i, rest = k[len(part) + 1:].split(".", 1)
                k = f"transformers.{i}.{part}.{rest}"
                break
        out[k] = v
    return out


def build_aliked(spec: ModelSpec, weights: Path, config: LearnedConfig):
    """kornia's ALIKED of the spec's ``arch`` with the verified weight file's tensors."""
    from kornia.feature import ALIKED

    from wildspace.reid.embedders import read_state_dict

    arch = str(spec.extra.get("arch", ""))
    if arch not in ALIKED_ARCHS:
        raise LearnedError(f"model '{spec.name}': arch '{arch}' is not one of {', '.join(ALIKED_ARCHS)}")
    model = ALIKED(model_name=arch, max_num_keypoints=config.keypoints)
    _load_exact(model, read_state_dict(weights), spec.name, derived=("hw_grid",))
    return model.eval()


def build_lightglue(spec: ModelSpec, weights: Path, config: LearnedConfig):
    """kornia's LightGlue sized from the weight file (descriptor width, layers), for 128-d
    ALIKED descriptors, with its tensors."""
    from kornia.feature import LightGlue

    from wildspace.reid.embedders import read_state_dict

    state = _rename_lightglue(read_state_dict(weights))
    proj = state.get("input_proj.weight")
    layers = {int(k.split(".")[1]) for k in state if k.startswith("transformers.")}
    if proj is None or not layers:
        raise LearnedError(f"model '{spec.name}': {Path(weights).name} is not a LightGlue state dict")
    heads = int(spec.extra.get("num_heads", 4))
    features: Any = None  # no preset: sized from the file here
    model = LightGlue(features=features, input_dim=int(proj.shape[1]), descriptor_dim=int(proj.shape[0]),
                      n_layers=max(layers) + 1, num_heads=heads, flash=False,
                      filter_threshold=config.filter_threshold)
    _load_exact(model, state, spec.name, derived=("confidence_thresholds",))
    return model.eval()


def _load_exact(model, state: dict, name: str, derived: tuple[str, ...] = ()) -> None:
    """Every learned tensor present and of the right shape (a partial file is refused)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(("num_batches_tracked",) + derived)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise LearnedError(f"model '{name}': the weight file does not fit the architecture "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict(state, strict=False)


def load_learned_matcher(settings=None, config: LearnedConfig = LearnedConfig(),
                         keypoint_model: str = "aliked-n16",
                         match_model: str = "lightglue-aliked") -> LearnedMatcher:
    """Find both specs, fetch their verified weights (cache / Hub / import), build the matcher."""
    from wildspace.hub.fetch import ModelStore, file_hashes
    from wildspace.hub.specs import SpecRegistry
    from wildspace.settings import load_settings

    settings = settings or load_settings()
    registry, store = SpecRegistry(settings.spec_dirs), ModelStore(settings)
    specs = [registry.get(keypoint_model), registry.get(match_model)]
    for spec in specs:
        if spec.task != "match":  # before any weights are fetched
            raise LearnedError(f"model '{spec.name}' is a {spec.task} model, not a matcher")
    paths = [store.fetch(s) for s in specs]
    aliked = build_aliked(specs[0], paths[0], config)
    lightglue = build_lightglue(specs[1], paths[1], config)
    weights_id = ":".join(file_hashes(p)[0][:16] for p in paths)
    cache = settings.home / "cache" / "reid-learned" if settings.feature_cache else None
    return LearnedMatcher(aliked, lightglue, config, weights_id, cache)
