"""Local features cached per image by content hash, and extracted in parallel.

Building a gallery, enrolling and evaluating extract RootSIFT features from the same photos
again and again; the cache keys each result by the SHA-256 of the pixels, the animal box, the
mirror flag and the extraction settings, so no image is described twice. Files are written
atomically (a crash leaves no half file; an unreadable file is extracted again).

OpenCV's SIFT releases the GIL, so a thread pool uses every core without copying images
between processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from wildspace.reid.local_features import LocalFeatureConfig, LocalFeatures, extract

# settings that change what extract() returns (the scoring ones do not)
_EXTRACT_FIELDS = ("max_side", "n_features", "caption_mask", "clahe_clip", "chip_side",
                   "chip_upscale", "chip_margin")
VERSION = 2  # bump when extract() changes


def content_key(rgb: np.ndarray, settings) -> str:
    """SHA-256 of an image's pixels (shape, dtype, bytes) and of JSON-able ``settings``."""
    rgb = np.ascontiguousarray(rgb)
    h = hashlib.sha256()
    h.update(repr((rgb.shape, str(rgb.dtype))).encode())
    h.update(rgb.data.cast("B"))
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def feature_key(rgb: np.ndarray, config: LocalFeatureConfig, bbox=None, mirror: bool = False) -> str:
    """Content hash of one extraction: pixels, box, mirror flag and extraction settings."""
    settings = {k: v for k, v in asdict(config).items() if k in _EXTRACT_FIELDS}
    box = None if bbox is None else [round(float(v), 6) for v in bbox]
    return content_key(rgb, [VERSION, settings, box, bool(mirror)])


class FeatureCache:
    """A folder of ``<key>.npz`` feature files (``None`` folder: no caching) of one ``kind``
    (a class with ``to_arrays()`` and ``from_arrays(npz)``)."""

    def __init__(self, folder: Path | None, kind: Any = LocalFeatures):
        self.folder = None if folder is None else Path(folder)
        self.kind = kind
        self.hits = 0
        self.misses = 0

    def get(self, key: str):
        if self.folder is None:
            return None
        path = self.folder / key[:2] / f"{key}.npz"
        try:
            with np.load(path) as z:
                feats = self.kind.from_arrays(z)
        except (OSError, ValueError, KeyError):
            return None
        self.hits += 1
        return feats

    def put(self, key: str, feats) -> None:
        if self.folder is None:
            return
        folder = self.folder / key[:2]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        except OSError:
            return  # a read-only or full disk only costs the cache
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **feats.to_arrays())  # type: ignore[arg-type]  # stubs match ** to allow_pickle
            os.replace(tmp, folder / f"{key}.npz")
        except OSError:
            Path(tmp).unlink(missing_ok=True)  # a full disk only costs the cache

    def extract(self, rgb: np.ndarray, config: LocalFeatureConfig = LocalFeatureConfig(),
                bbox=None, mirror: bool = False) -> LocalFeatures:
        """Cached :func:`wildspace.reid.local_features.extract`."""
        key = feature_key(rgb, config, bbox, mirror)
        hit = self.get(key)
        if hit is not None:
            return hit
        self.misses += 1
        feats = extract(rgb, config, bbox=bbox, mirror=mirror)
        # what a reader of the cache gets back: descriptors stored as float16
        feats = LocalFeatures.from_arrays(feats.to_arrays())
        self.put(key, feats)
        return feats


def default_cache(settings=None) -> FeatureCache:
    """The cache under ``$WILDSPACE_HOME/cache/reid-features`` (``WILDSPACE_FEATURE_CACHE=0``,
    i.e. ``Settings.feature_cache`` off, turns it off)."""
    if settings is None:
        from wildspace.settings import load_settings

        settings = load_settings()
    if not settings.feature_cache:
        return FeatureCache(None)
    return FeatureCache(settings.home / "cache" / "reid-features")


def extract_many(images, config: LocalFeatureConfig = LocalFeatureConfig(), bboxes=None,
                 mirror: bool = False, cache: FeatureCache | None = None,
                 workers: int | None = None) -> list[LocalFeatures]:
    """Features of every image (``bboxes``: one box or ``None`` per image), in order, with
    ``workers`` threads (default: the CPU count, at most 8)."""
    images = list(images)
    bboxes = [None] * len(images) if bboxes is None else list(bboxes)
    cache = cache or FeatureCache(None)
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(images) <= 1:
        return [cache.extract(im, config, b, mirror) for im, b in zip(images, bboxes)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sift") as pool:
        return list(pool.map(lambda a: cache.extract(a[0], config, a[1], mirror),
                             zip(images, bboxes)))
