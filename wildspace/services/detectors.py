"""Services the CLI, the app and workers share: specs, verified weights, built detectors.

Built once and passed in (no global model state); detectors are cached per
(model, image size) with a small LRU so a Space does not hold every model in memory.
"""

from __future__ import annotations

import collections
import datetime as _dt
import threading
from dataclasses import dataclass
from pathlib import Path

from wildspace.detect.base import Detector
from wildspace.errors import NotFound, UsageError
from wildspace.hub.fetch import ModelStore, ModelUnavailable, sha256_file
from wildspace.hub.specs import (
    ModelSpec,
    SpecError,
    SpecRegistry,
    WeightsSource,
    parse_spec,
    spec_to_dict,
    write_spec_file,
)
from wildspace.settings import Settings, load_settings


@dataclass(frozen=True)
class ModelListing:
    name: str
    task: str
    family: str
    cached: bool
    path: str | None
    license: str
    source: str


class DetectorService:
    def __init__(self, settings: Settings | None = None, device: str = "cpu", max_cached: int = 2,
                 backend: str | None = None, precision: str | None = None):
        """``backend``: ``torch``, ``onnx`` or ``auto`` (default: the settings',
        ``WILDSPACE_BACKEND``, itself ``auto``); see :mod:`wildspace.detect.onnx_backend`.
        ``precision``: ``fp32``, ``bf16`` or ``auto`` (default ``WILDSPACE_PRECISION``, itself
        ``auto``); see :mod:`wildspace.detect.precision`."""
        from wildspace.detect.onnx_backend import check_backend
        from wildspace.detect.precision import check_precision

        self.settings = settings or load_settings()
        self.device = device
        self.backend = check_backend(backend or self.settings.backend)
        self.precision = check_precision(precision or self.settings.precision)
        self.registry = SpecRegistry(self.settings.spec_dirs)
        self.store = ModelStore(self.settings)
        self._cache: collections.OrderedDict[tuple, Detector] = collections.OrderedDict()
        self._max_cached = max_cached
        self._lock = threading.Lock()

    # -- what is known ------------------------------------------------------------------
    def detector_names(self) -> list[str]:
        """Detectors for camera-trap runs (product localisers, ``kind: products-localizer``,
        are detection models too but serve the Products tab only)."""
        return [n for n in self.registry.names(task="detect")
                if self.registry.get(n).extra.get("kind") != "products-localizer"]

    def spec(self, name: str) -> ModelSpec:
        return self.registry.get(name)

    def listing(self) -> list[ModelListing]:
        rows = []
        for spec in self.registry:
            path = self.store.cached_path(spec)
            w = spec.weights
            source = (f"hf://{w.hub.repo_id}@{w.hub.revision[:10]}" if w.hub else w.url or "imported")
            rows.append(ModelListing(spec.name, spec.task, spec.family, path is not None,
                                     str(path) if path else None, spec.license, source))
        return rows

    def available_detectors(self) -> list[str]:
        """Detector names whose weights are on this machine now."""
        return [n for n in self.detector_names() if self.store.cached_path(self.spec(n))]

    # -- loading ------------------------------------------------------------------------
    @property
    def export_dir(self) -> Path:
        """Cache of networks exported for the ONNX Runtime backend."""
        return self.settings.home / "exported"

    def load(self, name: str | None = None, weights: str | Path | None = None,
             image_size: int | None = None) -> Detector:
        """A built detector for a spec ``name`` or a local ``weights`` file (cached).

        Raises:
            KeyError: unknown model name (message lists the known ones).
            ModelUnavailable: weights not on this machine and not downloadable.
            HashMismatch / UnsafeCheckpoint: the file is not the pinned one, or hostile.
        """
        from wildspace.detect.factory import build_detector, build_detector_for_spec

        if (name is None) == (weights is None):
            raise UsageError("give exactly one of a model name or a weights file")
        key = (name, str(Path(weights).resolve()) if weights else None, image_size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            if name is not None:
                spec = self.registry.get(name)
                det = build_detector_for_spec(spec, self.store.fetch(spec), self.device, image_size,
                                              backend=self.backend, export_dir=self.export_dir,
                                              threads=self.settings.threads, precision=self.precision)
            else:
                assert weights is not None  # exactly one of name / weights, checked above
                if not Path(weights).is_file():
                    raise NotFound(f"weights file not found: {weights}")
                det = build_detector(weights, input_size=image_size, device=self.device,
                                     backend=self.backend, export_dir=self.export_dir,
                                     threads=self.settings.threads, precision=self.precision)
            self._cache[key] = det
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
            return det

    # -- air-gapped import --------------------------------------------------------------
    def import_model(self, file: str | Path, name: str) -> ModelSpec:
        """Bring a weight file onto this machine under ``name``.

        A known ``name`` must match its spec's hash. A new ``name`` registers custom weights:
        the family and class names are read from the (safely scanned) checkpoint and a spec
        is written to the data dir.
        """
        file = Path(file)
        if not file.is_file():
            raise NotFound(f"file not found: {file}")
        if name in self.registry:
            spec = self.registry.get(name)
            self.store.import_file(spec, file)
            return spec
        from wildspace.detect.factory import build_detector, detect_family

        family = detect_family(file)
        det = build_detector(file, family=family, device="cpu")  # scans, loads, reads labels
        digest = sha256_file(file)
        try:
            spec = parse_spec(spec_to_dict(ModelSpec(
                name=name, task="detect", family=family,
                weights=WeightsSource(filename=file.name, sha256=digest,
                                      sha256_note="recorded at import", size_bytes=file.stat().st_size),
                input_size=det.info.input_size, labels=det.info.labels,
                thresholds={"typical": 0.2, "conservative": 0.05},
                license="unknown (custom weights imported by a user)",
                card=f"Custom detector imported from {file.name} on "
                     f"{_dt.date.today().isoformat()}. Classes: {', '.join(det.info.labels)}.",
                version="custom", stride=getattr(det, "stride", 32),
            )), where=f"import of {file.name}")
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        self.store.import_file(spec, file)
        write_spec_file(spec, self.settings.user_specs_dir / f"{name}.yaml")
        self.registry.add(spec)
        return spec


__all__ = ["DetectorService", "ModelListing", "ModelUnavailable"]
