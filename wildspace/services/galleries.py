"""Individual lookup as a service: galleries on disk, detector crops, embedders, enrolment.

This is the layer that composes ``detect`` (crops of whole frames) with ``reid`` (matching),
used by the app, the CLI and the worker. Shared galleries (built with the CLI) live in
``<home>/galleries/<name>``; a gallery an app user creates lives in their own folder,
``<home>/galleries/.owners/<sha256 of the owner>/<name>``, so two users may both have a
gallery called ``cats`` and nobody can tell whether a name is taken by someone else.

Concurrency: there is no service-wide lock held while work is done. Each gallery has its own
write lock (enrolments into one gallery are serialised, others are not touched); lookups take
no gallery lock at all (a gallery version is immutable once ``CURRENT`` names it); each
embedder has its own load lock. Enrolment saves the new version at once with the previous
calibration (see :meth:`GalleryService.enrol`) and recalibrates off the request path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildspace.errors import UsageError
from wildspace.reid.build import CropFn, build_gallery, crop_box, enrol, read_identity_table
from wildspace.reid.gallery import GalleryData, GalleryError, open_gallery, read_version, save_gallery, version_dir
from wildspace.reid.local_features import extract
from wildspace.reid.matching import Matcher, available_methods, default_method
from wildspace.settings import Settings, load_settings
from wildspace.types import LookupResult

log = logging.getLogger(__name__)
OWNER_FILE = "OWNER"
PRIVATE_DIR = ".owners"  # never a gallery name: names start with a letter or digit
RECALIBRATION_TRIES = 3  # a background recalibration that fails is tried again, then logged
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_ABS_PATH = re.compile(r"(?<![\w/:.~])(?:[A-Za-z]:\\|/)(?:[^\s/\\'\"`()\[\]{}<>,;]+[/\\])*"
                       r"[^\s/\\'\"`()\[\]{}<>,;:]+")


@dataclass(frozen=True)
class LookupAnswer:
    """What the app shows: the crop that was matched, its box, and the result."""

    crop: np.ndarray
    bbox: tuple[float, float, float, float] | None
    result: LookupResult


@dataclass(frozen=True)
class EmbedderChoice:
    """An embedder a new gallery may use: a spec of task ``embed``.

    ``installed``: the spec lives in this data dir's ``specs/`` (trained with ``train reid`` or
    the Train tab, or published from a job), not among the built-in specs; ``on_disk``: its
    weights are on this machine (else they are fetched, verified, on first use)."""

    name: str
    installed: bool
    on_disk: bool


def check_gallery_name(name: str) -> str:
    """The stripped name, or :class:`GalleryError` when it is not a plain gallery name."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise GalleryError(f"gallery name '{name}' must be 1-64 letters, digits, '-', '_' or '.'")
    return name


def not_found(name: str) -> str:
    """The one answer for a gallery that does not exist *and* for someone else's gallery."""
    return f"no gallery named '{name}'"


def hide_paths(text: str) -> str:
    """``text`` with every absolute file path cut to its last component (app messages)."""
    def last(m: re.Match) -> str:
        return re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1] or "…"

    return _ABS_PATH.sub(last, str(text))


def can_calibrate(gallery: GalleryData) -> bool:
    """Whether a calibration can be fitted: two identities, one of them with two images."""
    ids, counts = np.unique(gallery.identities, return_counts=True)
    return len(ids) >= 2 and bool((counts >= 2).any())


def _is_gallery(root: Path) -> bool:
    return (root / "CURRENT").is_file() or (root / "gallery.json").is_file()


def _key(root: Path) -> str:
    return str(Path(root).resolve())


def _lower_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux: the nice value is per thread),
    so a background recalibration yields to requests; a no-op where that is unsupported."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class GalleryService:
    """Galleries under ``<home>/galleries`` plus the models they need (cached, thread-safe).

    ``background_calibration`` (default on; the CLI turns it off): an enrolment into a
    calibrated gallery is saved at once *keeping the previous calibration* and a background
    thread recalibrates and saves a new version; see :meth:`enrol`.
    """

    def __init__(self, settings: Settings | None = None, detectors=None, device: str = "cpu",
                 crop_threshold: float = 0.2, background_calibration: bool = True):
        self.settings = settings or load_settings()
        self.detectors = detectors  # a DetectorService, for crops of whole frames
        if not 0 < crop_threshold < 1:
            raise UsageError(f"crop threshold must be between 0 and 1, got {crop_threshold}")
        self.crop_threshold = crop_threshold
        self.device = device
        self.background_calibration = background_calibration
        self._guard = threading.Lock()  # only around the dicts below, never around work
        self._locks: dict[tuple[str, str], threading.RLock] = {}
        self._cache: dict[str, tuple[str, GalleryData]] = {}
        self._embedders: dict[str, object] = {}
        self._recal: dict[str, dict] = {}  # gallery key -> pending background recalibration

    @property
    def root(self) -> Path:
        return self.settings.home / "galleries"

    def _lock(self, kind: str, key: str) -> threading.RLock:
        """The lock for one gallery (``write``/``load``) or one embedder (``embedder``)."""
        with self._guard:
            return self._locks.setdefault((kind, key), threading.RLock())

    # -- names and folders ---------------------------------------------------------------
    def private_root(self, owner: str) -> Path:
        """The folder of one app user's own galleries (named by a hash, never the token)."""
        return self.root / PRIVATE_DIR / hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]

    def names(self, owner: str | None = None) -> list[str]:
        """Galleries this owner may see: shared ones and their own (``None`` = all shared
        and legacy ones; the CLI)."""
        found: set[str] = set()
        if self.root.is_dir():
            found |= {p.name for p in self.root.iterdir() if _NAME.match(p.name)
                      and (p / "CURRENT").is_file() and self._visible(p, owner)}
        if owner is not None and self.private_root(owner).is_dir():
            found |= {p.name for p in self.private_root(owner).iterdir()
                      if _NAME.match(p.name) and (p / "CURRENT").is_file()}
        return sorted(found)

    def shared_names(self) -> list[str]:
        """Galleries everyone may see (built with the CLI, no owner)."""
        return [n for n in self.names() if self.gallery_owner(self.root / n) is None]

    def path(self, name: str, owner: str | None = None) -> Path:
        """A gallery reference. The CLI (``owner=None``) may name any folder; app users only
        plain names: their own gallery, else a shared one, else where theirs would be made."""
        if owner is not None:
            name = check_gallery_name(name)
            own = self.private_root(owner) / name
            shared = self.root / name
            if not _is_gallery(own) and _is_gallery(shared) and self._visible(shared, owner):
                return shared
            return own
        p = Path(name)
        if p.is_dir() and _is_gallery(p):
            return p
        if p.is_absolute() or len(p.parts) > 1:
            return p  # a folder to create (``gallery build --out``)
        return self.root / check_gallery_name(name)

    # -- ownership ---------------------------------------------------------------------
    @staticmethod
    def gallery_owner(root: Path) -> str | None:
        """Who enrolled a top-level gallery in the app before galleries had owner folders
        (``None``: a shared gallery, built by the CLI)."""
        f = Path(root) / OWNER_FILE
        return f.read_text(encoding="utf-8").strip() or None if f.is_file() else None

    def _visible(self, root: Path, owner: str | None) -> bool:
        found = self.gallery_owner(root)
        return owner is None or found is None or found == owner

    def _is_shared(self, root: Path) -> bool:
        return Path(root).parent == self.root and _is_gallery(root) and self.gallery_owner(root) is None

    def _check_write(self, root: Path, owner: str | None, name: str) -> None:
        """App writes: your own gallery, or a shared one off a public Space; on a public Space
        only users logged in with Hugging Face may write at all."""
        if owner is None or not self.settings.public_space:
            return
        if not owner.startswith("hf:"):
            raise GalleryError("log in with Hugging Face to enrol animals on this public Space")
        if self._is_shared(root):
            raise GalleryError(f"gallery '{name}' is shared and read-only here; enrol into a "
                               "gallery of your own (type a new name)")

    def _app_error(self, exc: Exception, name: str, root: Path) -> GalleryError:
        """An error for app users: the gallery by name, no server path."""
        if isinstance(exc, OSError):
            return GalleryError(f"gallery '{name}' cannot be used right now "
                                f"({exc.strerror or type(exc).__name__})")
        text = str(exc)
        for folder in sorted({str(root), _key(root)}, key=len, reverse=True):
            text = re.sub(re.escape(folder) + r"(?:[/\\]versions[/\\]\d+)?", f"gallery '{name}'", text)
        for folder in sorted({str(self.settings.home), _key(self.settings.home)}, key=len, reverse=True):
            text = text.replace(folder, "the data folder")
        return GalleryError(hide_paths(text))

    # -- models ----------------------------------------------------------------------------
    def embedders(self) -> list[EmbedderChoice]:
        """Every embedder a gallery can be built or created with, read from the spec folders
        now (a model trained or published since the app started is listed): the built-in
        specs (MegaDescriptor, MiewID, DINOv2) first, then the ones installed here."""
        from wildspace.hub.fetch import ModelStore
        from wildspace.hub.specs import SpecRegistry

        registry = SpecRegistry(self.settings.spec_dirs)
        store = ModelStore(self.settings)
        mine = self.settings.user_specs_dir.resolve()
        out = []
        for name in registry.names(task="embed"):
            spec = registry.get(name)
            installed = spec.path is not None and Path(spec.path).resolve().parent == mine
            try:
                on_disk = store.cached_path(spec) is not None
            except (OSError, ValueError):
                on_disk = False
            out.append(EmbedderChoice(name, installed, on_disk))
        return sorted(out, key=lambda c: (c.installed, c.name))

    def embedder(self, name: str):
        """The embedder ``name``, loaded once; loading holds only that name's lock."""
        from wildspace.reid.embedders import load_embedder

        with self._guard:
            if name in self._embedders:
                return self._embedders[name]
        with self._lock("embedder", name):
            with self._guard:
                if name in self._embedders:
                    return self._embedders[name]
            emb = load_embedder(name, self.settings, self.device)
            with self._guard:
                self._embedders[name] = emb
            return emb

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
        """The live version of a gallery this owner may see (``None`` = any; the CLI).

        A gallery that does not exist and another user's gallery give the same error."""
        root = self.path(name, owner)
        try:
            return self._load(root, name)
        except GalleryError as exc:
            raise (exc if owner is None else self._app_error(exc, name, root)) from None
        except OSError as exc:
            if owner is None:
                raise
            raise self._app_error(exc, name, root) from None

    def _load(self, root: Path, name: str) -> GalleryData:
        """The live version, from the cache when ``CURRENT`` has not moved (no write lock)."""
        key = _key(root)
        for attempt in range(3):
            if not _is_gallery(root):
                raise GalleryError(not_found(name))
            current = str(version_dir(root))
            with self._guard:
                hit = self._cache.get(key)
            if hit and hit[0] == current:
                return hit[1]
            with self._lock("load", key):  # one reader loads, the others wait for it
                with self._guard:
                    hit = self._cache.get(key)
                if hit and hit[0] == current:
                    return hit[1]
                try:
                    gallery = read_version(Path(current))
                except GalleryError:
                    if attempt < 2 and str(version_dir(root)) != current:
                        continue  # a newer version replaced this one while it was read
                    raise
                with self._guard:
                    self._cache[key] = (current, gallery)
                return gallery
        raise GalleryError(not_found(name))  # pragma: no cover - CURRENT moved three times

    def _saved(self, root: Path, gallery: GalleryData) -> None:
        """Save a new version; the next open reads it back (what a restarted app would see:
        descriptors are stored as float16)."""
        save_gallery(root, gallery)
        with self._guard:
            self._cache.pop(_key(root), None)

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
        with self._lock("write", _key(root)):
            self._saved(root, gallery)
        return root, gallery, failures

    @staticmethod
    def calibrate(gallery: GalleryData) -> None:
        """Fit every method the gallery supports (needs two identities, one with 2 images)."""
        from wildspace.reid.calibration import CalibrationError

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
            emb = self.embedder(gallery.embedder_name()).embed([crop])[0]
        matcher = Matcher(gallery, method)
        try:
            matcher.calibration()
        except Exception:
            raise GalleryError(f"gallery '{name}' has no calibration for '{method}': it needs at "
                               "least two animals and one animal with two images") from None
        result = matcher.lookup(feats, emb, viewpoint=viewpoint, k=k)
        return LookupAnswer(crop, bbox, result)

    def enrol(self, name: str, crop: np.ndarray, identity: str, viewpoint: str = "",
              bbox=None, create: bool = False, owner: str | None = None,
              embedder: str | None = None) -> GalleryData:
        """Append an image of ``identity`` (new or known) and save a new version atomically.

        Calibration: a gallery with no calibration yet (new, or just grown to two animals, one
        with two photos) is calibrated before it is saved, so it is usable at once. A gallery
        that is calibrated already is saved at once *with its previous calibration* (one more
        photo barely moves a leave-one-out fit: a valid approximation) and, with
        ``background_calibration``, recalibrated by one background thread per gallery that
        saves one more version (several enrolments meanwhile: one recalibration of the latest
        version). :meth:`wait_calibrated` waits for it. Only this gallery's write lock is held.

        ``owner`` (app users) scopes the write: a gallery created in the app belongs to its
        creator and is invisible to others; see :meth:`_check_write` for public Spaces.

        ``embedder`` (a spec of task ``embed``, see :meth:`embedders`) is chosen when
        ``create`` makes the gallery: its photos are then embedded as well as matched locally
        (``None``: weight-free local matching only). An existing gallery keeps the embedder it
        was made with; naming a different one is an error, not a silent switch.
        """
        root = self.path(name, owner)
        self._check_write(root, owner, name)
        try:
            gallery, later = self._enrol(root, name, crop, identity, viewpoint, bbox, create, embedder)
        except GalleryError as exc:
            raise (exc if owner is None else self._app_error(exc, name, root)) from None
        except OSError as exc:
            if owner is None:
                raise
            raise self._app_error(exc, name, root) from None
        push = owner is None or owner.startswith("hf:") or not self.settings.public_space
        if later:
            self._schedule_recalibration(root, name, push)
        elif push:
            self.push_if_configured(root, gallery)
        return gallery

    def _enrol(self, root: Path, name: str, crop, identity, viewpoint, bbox, create,
               embedder: str | None = None) -> tuple[GalleryData, bool]:
        """The new version saved; ``True`` when it still needs a background recalibration."""
        with self._lock("write", _key(root)):
            if create and not _is_gallery(root):
                from wildspace.reid.gallery import Record, encode_jpeg

                if not identity.strip():
                    raise GalleryError("give the animal a name (identity) to enrol it")
                gallery = GalleryData(name=name, records=[Record(f"enrolled-0-{identity}",
                                      identity.strip(), viewpoint, bbox)],
                                      images=[encode_jpeg(crop)], features=[extract(crop)])
                if embedder:
                    emb = self.embedder(embedder)
                    gallery.embeddings, gallery.embedder = emb.embed([crop]), emb.name
                previous: dict = {}
            else:
                current = self._load(root, name)
                if embedder and embedder != current.embedder:
                    uses = (f"embedder '{current.embedder}'" if current.embedder
                            else "weight-free local matching only")
                    raise GalleryError(f"gallery '{name}' exists and uses {uses}; an embedder is "
                                       "chosen when a gallery is created")
                emb = self.embedder(current.embedder_name()) if current.embeddings is not None else None
                gallery = enrol(current, crop, identity, viewpoint=viewpoint, bbox=bbox,
                                embedder=emb)
                previous = current.calibrations
            methods = available_methods(gallery)
            kept = {m: c for m, c in previous.items() if m in methods}
            later = self.background_calibration and bool(methods) and set(kept) == set(methods)
            if later:
                gallery.calibrations = dict(kept)
            elif can_calibrate(gallery):
                self.calibrate(gallery)
            self._saved(root, gallery)
        return gallery, later

    # -- background recalibration -------------------------------------------------------
    def _schedule_recalibration(self, root: Path, name: str, push: bool) -> None:
        key = _key(root)
        with self._guard:
            job = self._recal.get(key)
            if job is not None:  # a thread is on it: it recalibrates the latest version next
                job["dirty"] = True
                job["push"] = job["push"] or push
                return
            job = {"dirty": True, "push": push, "done": threading.Event()}
            self._recal[key] = job
        threading.Thread(target=self._recalibrate_loop, args=(root, name, key, job),
                         name=f"recalibrate-{name}", daemon=True).start()

    def _recalibrate_loop(self, root: Path, name: str, key: str, job: dict) -> None:
        _lower_priority()
        try:
            while True:
                with self._guard:
                    if job["dirty"]:
                        job["dirty"], work = False, "calibrate"
                    elif job["push"]:
                        job["push"], work = False, "push"
                    else:  # removed in the same step that found no work: none is lost
                        del self._recal[key]
                        return
                try:
                    if work == "calibrate":
                        self._recalibrate_once(root, name)
                    else:
                        self.push_if_configured(root, self._load(root, name))
                except Exception:  # noqa: BLE001 - a background thread must not die silently
                    job["failures"] = job.get("failures", 0) + 1
                    retry = work == "calibrate" and job["failures"] < RECALIBRATION_TRIES
                    log.exception("background %s of gallery '%s' failed%s", work, name,
                                  "; trying again" if retry else "")
                    if retry:  # e.g. a module another thread was importing at that moment
                        time.sleep(1.0)
                        with self._guard:
                            job["dirty"] = True
        finally:
            with self._guard:  # an unexpected end too: the next enrolment starts a thread
                if self._recal.get(key) is job:
                    del self._recal[key]
            job["done"].set()

    def _recalibrate_once(self, root: Path, name: str) -> None:
        """Fit the live version's calibration (no lock held) and save it as a new version,
        unless an enrolment replaced that version meanwhile (it scheduled another round)."""
        version = str(version_dir(root))
        base = self._load(root, name)
        if not can_calibrate(base):
            return
        fresh = dataclasses.replace(base, calibrations={})
        self.calibrate(fresh)
        with self._lock("write", _key(root)):
            if str(version_dir(root)) != version:
                return
            self._saved(root, fresh)

    def wait_calibrated(self, name: str | None = None, owner: str | None = None,
                        timeout: float | None = None) -> bool:
        """Wait for background recalibrations (of one gallery, or all); ``False`` on timeout."""
        keys = None if name is None else {_key(self.path(name, owner))}
        while True:
            with self._guard:
                events = [j["done"] for k, j in self._recal.items() if keys is None or k in keys]
            if not events:
                return True
            for e in events:
                if not e.wait(timeout):
                    return False

    def push_if_configured(self, root: Path, gallery: GalleryData) -> str | None:
        """Push to the gallery's Hub repo (set by ``gallery pull``) when ``HF_TOKEN`` is set."""

        from wildspace.reid.gallery import push_gallery

        repo, token = gallery.meta.get("hub_repo"), self.settings.hf_token
        if not repo or not token:
            return None
        return push_gallery(root, repo, token)

    def pull(self, name: str, repo_id: str, revision: str) -> GalleryData:
        """Copy a Hub gallery (pinned revision) into a local gallery that remembers its repo."""
        from wildspace.reid.gallery import pull_gallery

        gallery = open_gallery(pull_gallery(repo_id, revision, self.settings.hf_cache))
        gallery.meta.update(hub_repo=repo_id, hub_revision=revision)
        root = self.path(name)
        with self._lock("write", _key(root)):
            self._saved(root, gallery)
        return gallery
