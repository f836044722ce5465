"""Individual lookup as a service: galleries on disk, detector crops, embedders, enrolment.

This is the layer that composes ``detect`` (crops of whole frames) with ``reid`` (matching),
used by the app, the CLI and the worker. Local galleries live in ``<home>/galleries/<name>``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildspace.config import Settings, load_settings
from wildspace.reid.build import CropFn, build_gallery, crop_box, enrol, read_identity_table
from wildspace.reid.gallery import GalleryData, GalleryError, open_gallery, save_gallery, version_dir
from wildspace.reid.local_features import extract
from wildspace.reid.matching import Matcher, default_method
from wildspace.types import LookupResult

OWNER_FILE = "OWNER"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class LookupAnswer:
    """What the app shows: the crop that was matched, its box, and the result."""

    crop: np.ndarray
    bbox: tuple[float, float, float, float] | None
    result: LookupResult


def check_gallery_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise GalleryError(f"gallery name '{name}' must be 1-64 letters, digits, '-', '_' or '.'")
    return name


class GalleryService:
    """Galleries under ``<home>/galleries`` plus the models they need (cached, thread-safe)."""

    def __init__(self, settings: Settings | None = None, detectors=None, device: str = "cpu",
                 crop_threshold: float = 0.2):
        self.settings = settings or load_settings()
        self.detectors = detectors  # a DetectorService, for crops of whole frames
        if not 0 < crop_threshold < 1:
            raise ValueError(f"crop threshold must be between 0 and 1, got {crop_threshold}")
        self.crop_threshold = crop_threshold
        self.device = device
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[str, GalleryData]] = {}
        self._embedders: dict[str, object] = {}

    @property
    def root(self) -> Path:
        return self.settings.home / "galleries"

    def names(self, owner: str | None = None) -> list[str]:
        """Galleries this owner may see: shared ones and their own (``None`` = all; the CLI)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if (p / "CURRENT").is_file() and self._visible(p, owner))

    def shared_names(self) -> list[str]:
        """Galleries everyone may see (built with the CLI, no owner)."""
        return [n for n in self.names() if self.gallery_owner(self.root / n) is None]

    def path(self, name: str, owner: str | None = None) -> Path:
        """A gallery reference. The CLI (``owner=None``) may name any folder; app users only
        plain names under ``root``."""
        if owner is not None:
            return self.root / check_gallery_name(name)
        p = Path(name)
        if p.is_dir() and ((p / "CURRENT").is_file() or (p / "gallery.json").is_file()):
            return p
        if p.is_absolute() or len(p.parts) > 1:
            return p  # a folder to create (``gallery build --out``)
        return self.root / check_gallery_name(name)

    # -- ownership ---------------------------------------------------------------------
    @staticmethod
    def gallery_owner(root: Path) -> str | None:
        """Who enrolled the gallery in the app (``None``: a shared gallery, built by the CLI)."""
        f = Path(root) / OWNER_FILE
        return f.read_text(encoding="utf-8").strip() or None if f.is_file() else None

    def _visible(self, root: Path, owner: str | None) -> bool:
        found = self.gallery_owner(root)
        return owner is None or found is None or found == owner

    def _check_read(self, root: Path, owner: str | None, name: str) -> None:
        if not self._visible(root, owner):
            raise GalleryError(f"{root} is not a gallery (no gallery named '{name}')")

    def _check_write(self, root: Path, owner: str | None, name: str) -> None:
        """App writes: your own gallery, or a shared one off a public Space; on a public Space
        only users logged in with Hugging Face may write at all."""
        if owner is None:
            return
        self._check_read(root, owner, name)
        if self.settings.public_space:
            if not owner.startswith("hf:"):
                raise GalleryError("log in with Hugging Face to enrol animals on this public Space")
            if (root / "CURRENT").is_file() and self.gallery_owner(root) is None:
                raise GalleryError(f"gallery '{name}' is shared and read-only here; enrol into a "
                                   "gallery of your own (type a new name)")

    # -- models ----------------------------------------------------------------------------
    def embedder(self, name: str):
        from wildspace.reid.embedders import load_embedder

        with self._lock:
            if name not in self._embedders:
                self._embedders[name] = load_embedder(name, self.settings, self.device)
            return self._embedders[name]

    def crop_fn(self, detector: str | None, threshold: float | None = None) -> CropFn | None:
        """Crop of the most confident animal box at or above ``threshold`` (default: the
        service's ``crop_threshold``), or ``None`` (no detector / no animal)."""
        if not detector or self.detectors is None:
            return None
        threshold = self.crop_threshold if threshold is None else threshold
        from wildspace.formats.categories import label_kind

        det = self.detectors.load(name=detector)

        def crop(rgb: np.ndarray):
            (dets,) = det.run([det.prepare(rgb)], threshold)
            animals = [d for d in dets if d.class_id < len(det.info.labels)
                       and label_kind(det.info.labels[d.class_id]) == "animal"]
            if not animals:
                return None
            best = max(animals, key=lambda d: d.conf)
            return crop_box(rgb, best.bbox_xywh_norm), tuple(best.bbox_xywh_norm)

        return crop

    # -- galleries -------------------------------------------------------------------------
    def open(self, name: str, owner: str | None = None) -> GalleryData:
        """The live version of a gallery this owner may see (``None`` = any; the CLI)."""
        root = self.path(name, owner)
        self._check_read(root, owner, name)
        with self._lock:
            current = str(version_dir(root))
            hit = self._cache.get(str(root))
            if hit and hit[0] == current:
                return hit[1]
            gallery = open_gallery(root)
            self._cache[str(root)] = (current, gallery)
            return gallery

    def build(self, name: str, images: Path, identities: Path, model: str | None = None,
              crop_with: str | None = None, local: bool = True, progress=None
              ) -> tuple[Path, GalleryData, list[tuple[str, str]]]:
        """Build, calibrate and save a gallery; returns ``(folder, gallery, failures)``."""
        root = self.path(name)
        rows = read_identity_table(identities)
        emb = self.embedder(model) if model else None
        gallery, failures = build_gallery(images, rows, root.name, embedder=emb,
                                          crop_fn=self.crop_fn(crop_with), local=local,
                                          max_pixels=self.settings.max_pixels, progress=progress)
        self.calibrate(gallery)
        save_gallery(root, gallery)
        return root, gallery, failures

    @staticmethod
    def calibrate(gallery: GalleryData) -> None:
        """Fit every method the gallery supports (needs two identities, one with 2 images)."""
        from wildspace.reid.calibration import CalibrationError
        from wildspace.reid.matching import available_methods

        for method in available_methods(gallery):
            try:
                Matcher(gallery, method).calibrate()
            except CalibrationError:
                gallery.calibrations.pop(method, None)

    def lookup(self, name: str, rgb: np.ndarray, viewpoint: str = "", crop_with: str | None = None,
               method: str | None = None, k: int = 5, owner: str | None = None) -> LookupAnswer:
        """Crop (detector, when given), match against the gallery, decide known/new."""
        from wildspace.reid.build import prepare_query

        gallery = self.open(name, owner)
        method = method or default_method(gallery)
        crop, bbox = prepare_query(rgb, None, self.crop_fn(crop_with))
        feats = extract(crop) if gallery.features is not None else None
        emb = None
        if gallery.embeddings is not None and method in ("embed", "fused"):
            emb = self.embedder(gallery.embedder).embed([crop])[0]
        matcher = Matcher(gallery, method)
        try:
            matcher.calibration()
        except Exception:
            raise GalleryError(f"gallery '{name}' has no calibration for '{method}': it needs at "
                               "least two animals and one animal with two images") from None
        result = matcher.lookup(feats, emb, viewpoint=viewpoint, k=k)
        return LookupAnswer(crop, bbox, result)

    def enrol(self, name: str, crop: np.ndarray, identity: str, viewpoint: str = "",
              bbox=None, create: bool = False, owner: str | None = None) -> GalleryData:
        """Append an image of ``identity`` (new or known), recalibrate, save atomically.

        ``owner`` (app users) scopes the write: a gallery created in the app belongs to its
        creator and is invisible to others; see :meth:`_check_write` for public Spaces.
        """
        root = self.path(name, owner)
        self._check_write(root, owner, name)
        with self._lock:
            if create and not (root / "CURRENT").is_file():
                from wildspace.atomic import atomic_path
                from wildspace.reid.gallery import Record, encode_jpeg

                if not identity.strip():
                    raise GalleryError("give the animal a name (identity) to enrol it")
                gallery = GalleryData(name=name, records=[Record(f"enrolled-0-{identity}",
                                      identity.strip(), viewpoint, bbox)],
                                      images=[encode_jpeg(crop)], features=[extract(crop)])
                if owner is not None:
                    root.mkdir(parents=True, exist_ok=True)
                    with atomic_path(root / OWNER_FILE) as tmp:
                        tmp.write_text(owner, encoding="utf-8")
            else:
                current = self.open(name, owner)
                emb = self.embedder(current.embedder) if current.embeddings is not None else None
                gallery = enrol(current, crop, identity, viewpoint=viewpoint, bbox=bbox,
                                embedder=emb)
            self.calibrate(gallery)
            save_gallery(root, gallery)
            self._cache.pop(str(root), None)
        if owner is None or owner.startswith("hf:") or not self.settings.public_space:
            self.push_if_configured(root, gallery)
        return gallery

    def push_if_configured(self, root: Path, gallery: GalleryData) -> str | None:
        """Push to the gallery's Hub repo (set by ``gallery pull``) when ``HF_TOKEN`` is set."""
        import os

        from wildspace.reid.gallery import push_gallery

        repo, token = gallery.meta.get("hub_repo"), os.environ.get("HF_TOKEN")
        if not repo or not token:
            return None
        return push_gallery(root, repo, token)

    def pull(self, name: str, repo_id: str, revision: str) -> GalleryData:
        """Copy a Hub gallery (pinned revision) into a local gallery that remembers its repo."""
        from wildspace.reid.gallery import pull_gallery

        gallery = open_gallery(pull_gallery(repo_id, revision, self.settings.hf_cache))
        gallery.meta.update(hub_repo=repo_id, hub_revision=revision)
        root = self.path(name)
        with self._lock:
            save_gallery(root, gallery)
            self._cache.pop(str(root), None)
        return gallery
