"""Classifiers the CLI, the app and workers share: known specs, verified weights, built models.

Shares the spec registry and model store with the detector service (one data dir, one place
to import weights). Built classifiers are cached per name with a small LRU; there is no
global model state.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import threading
from pathlib import Path
from typing import Sequence

from wildspace.classify.models import CLASSIFIER_FAMILIES, KINDS, Classifier, build_classifier, info_from_spec
from wildspace.classify.products import LOCALIZER_KIND, check_product_labels
from wildspace.errors import NotFound, UnknownName, UsageError
from wildspace.hub.fetch import ModelStore, sha256_file
from wildspace.hub.specs import (
    ModelSpec,
    SpecError,
    SpecRegistry,
    WeightsSource,
    parse_spec,
    spec_to_dict,
    write_spec_file,
)
from wildspace.settings import Settings


class ClassifierService:
    def __init__(self, settings: Settings, registry: SpecRegistry | None = None,
                 store: ModelStore | None = None, device: str = "cpu", max_cached: int = 2):
        self.settings = settings
        self.registry = registry or SpecRegistry(settings.spec_dirs)
        self.store = store or ModelStore(settings)
        self.device = device
        self._cache: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._max_cached = max_cached
        self._lock = threading.Lock()

    @classmethod
    def sharing(cls, detector_service) -> "ClassifierService":
        """A classifier service over the same settings, registry and store as ``detector_service``."""
        return cls(detector_service.settings, detector_service.registry, detector_service.store,
                   device=detector_service.device)

    # -- what is known ------------------------------------------------------------------
    def names(self, kind: str = "species") -> list[str]:
        """Classifier specs of ``kind`` (``species`` or ``products``)."""
        if kind not in KINDS:
            raise UsageError(f"kind '{kind}' is not one of {', '.join(KINDS)}")
        return [n for n in self.registry.names(task="classify")
                if str(self.registry.get(n).extra.get("kind", "species")) == kind]

    def available(self, kind: str = "species") -> list[str]:
        """Names of ``kind`` whose weights are on this machine now."""
        return [n for n in self.names(kind) if self.store.cached_path(self.registry.get(n))]

    def spec(self, name: str) -> ModelSpec:
        return self.registry.get(name)

    def localizer_name(self, name: str) -> str | None:
        """The product localiser a products classifier names (``extra.localizer``), if any."""
        return self.registry.get(name).extra.get("localizer")

    # -- loading ------------------------------------------------------------------------
    def load(self, name: str) -> Classifier:
        """The built classifier ``name`` (cached).

        Raises:
            KeyError: unknown name (the message lists the known classifiers).
            ModelUnavailable / HashMismatch / UnsafeCheckpoint / ValueError: see the store.
        """
        if name not in self.registry or self.registry.get(name).task != "classify":
            known = ", ".join(self.registry.names(task="classify")) or "none"
            raise UnknownName(f"unknown classifier '{name}'; known classifiers: {known}")
        spec = self.registry.get(name)
        if spec.extra.get("kind") == "products":
            check_product_labels(spec.labels, f"products model '{name}'")
        return self._cached(name, lambda spec, path: build_classifier(spec, path, self.device))

    def load_localizer(self, name: str):
        """The built product localiser (torchvision Faster R-CNN) ``name`` (cached)."""
        from wildspace.classify.products import build_localizer

        spec = self.registry.get(name)
        if spec.extra.get("kind") != LOCALIZER_KIND:
            raise UsageError(f"model '{name}' is not a product localiser (kind: {LOCALIZER_KIND})")
        return self._cached(name, lambda s, path: build_localizer(s, path, self.device))

    def _cached(self, name: str, build):
        with self._lock:
            if name in self._cache:
                self._cache.move_to_end(name)
                return self._cache[name]
            spec = self.registry.get(name)
            model = build(spec, self.store.fetch(spec))
            self._cache[name] = model
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
            return model

    # -- custom weights -----------------------------------------------------------------
    def import_classifier(self, file: str | Path, name: str, labels: Sequence[str], arch: str,
                          family: str = "timm", input_size: int = 224, kind: str = "species",
                          threshold: float = 0.5, extra: dict | None = None) -> ModelSpec:
        """Register custom classifier weights under a new ``name``.

        The file is loaded into ``arch`` first (so a wrong architecture or label count fails
        here, not in the field), then copied into the store and a spec written to the data dir.

        Raises:
            ValueError: the name is taken, bad arguments, or the weights do not fit.
        """
        file = Path(file)
        if not file.is_file():
            raise NotFound(f"file not found: {file}")
        if name in self.registry:
            raise UsageError(f"a model named '{name}' exists already; choose a new name")
        if family not in CLASSIFIER_FAMILIES:
            raise UsageError(f"family '{family}' is not one of {', '.join(CLASSIFIER_FAMILIES)}")
        today = _dt.date.today().isoformat()
        shown = ", ".join(list(labels)[:8]) + (" …" if len(labels) > 8 else "")
        data = spec_to_dict(ModelSpec(
            name=name, task="classify", family=family,
            weights=WeightsSource(filename=file.name, sha256=sha256_file(file),
                                  sha256_note="recorded at import", size_bytes=file.stat().st_size),
            input_size=int(input_size), labels=tuple(str(x) for x in labels),
            thresholds={"typical": float(threshold), "conservative": float(threshold)},
            license="unknown (custom weights imported by a user)",
            card=f"Custom {kind} classifier ({family} {arch}) imported from {file.name} on {today}. "
                 f"{len(labels)} classes: {shown}.",
            version="custom", extra={"arch": arch, "kind": kind, **(extra or {})},
        ))
        try:
            spec = parse_spec(data, where=f"import of {file.name}")
            info_from_spec(spec)
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        if kind == "products":
            check_product_labels(spec.labels, f"products model '{name}'")
        build_classifier(spec, file, "cpu")  # refuses weights that do not fit before anything is written
        self.store.import_file(spec, file)
        write_spec_file(spec, self.settings.user_specs_dir / f"{name}.yaml")
        self.registry.add(spec)
        return spec


def read_labels(path: str | Path) -> list[str]:
    """Class names from a file: a ``.json`` list (or ``{"0": name, …}`` mapping), or text
    with one name per line (blank lines and ``#`` comments ignored).

    Raises:
        ValueError: empty, duplicated or malformed label lists.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"labels file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path.name} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            try:
                keys = sorted(data, key=int)
            except ValueError:
                raise UsageError(f"{path.name}: mapping keys must be class indexes 0..N-1") from None
            if [int(k) for k in keys] != list(range(len(keys))):
                raise UsageError(f"{path.name}: mapping keys must be class indexes 0..N-1 without gaps")
            labels = [str(data[k]) for k in keys]
        elif isinstance(data, list):
            labels = [str(x) for x in data]
        else:
            raise UsageError(f"{path.name}: expected a JSON list of names or an index->name mapping")
    else:
        labels = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not labels:
        raise UsageError(f"{path.name}: no class names found")
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise UsageError(f"{path.name}: class names must be unique; repeated: {', '.join(dupes[:5])}")
    return labels
