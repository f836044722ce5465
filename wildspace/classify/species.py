"""Species on detector crops: attach a classifier's top answers to each animal box.

Which boxes: those whose detector label is not a person or a vehicle (MegaDetector's
``animal``, or any label of a custom detector) with ``conf >= min_detection_conf``.
Each is cropped with a margin, crops from many images share forward passes, and each box gets
its ``top_k`` ``(category id, conf)`` pairs, best first (MegaDetector's ``classifications``).
Below ``threshold`` the box's species reads ``unknown`` (:func:`species_of`); the JSON keeps
the scores so tools can apply their own threshold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from wildspace.classify.crops import DEFAULT_MARGIN, crop_box
from wildspace.classify.models import Classifier
from wildspace.errors import UsageError
from wildspace.formats.categories import label_kind, label_of
from wildspace.media.images import ImageReadError, load_image
from wildspace.types import Detection, ImageResult

UNKNOWN = "unknown"
_NOT_ANIMALS = ("human", "vehicle")


@dataclass(frozen=True)
class SpeciesOptions:
    """How detections are classified.

    Attributes:
        threshold: classification confidence below which the species is ``unknown`` (0–1).
        min_detection_conf: boxes below this detection confidence are not classified.
        margin: context added around each box, as a fraction of its size.
        top_k: answers kept per box.
        batch_size: crops per forward pass.
    """

    threshold: float = 0.5
    min_detection_conf: float = 0.1
    margin: float = DEFAULT_MARGIN
    top_k: int = 3
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("threshold", "min_detection_conf"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"{name} must be between 0 and 1, got {v}")
        if self.top_k < 1 or self.batch_size < 1:
            raise UsageError("top_k and batch_size must be >= 1")


def is_classifiable(d: Detection, detector_labels: Sequence[str], min_conf: float) -> bool:
    return d.conf >= min_conf and label_kind(label_of(tuple(detector_labels), d)) not in _NOT_ANIMALS


def top_classifications(probs: np.ndarray, k: int) -> tuple[tuple[str, float], ...]:
    """The ``k`` best ``(str(index), prob)`` pairs of one probability vector, best first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple((str(int(i)), float(probs[i])) for i in order)


def species_of(d: Detection, class_labels: Sequence[str], threshold: float) -> tuple[str, float | None]:
    """``(species, conf)`` of a box: its best classification, ``unknown`` below
    ``threshold``; ``("", None)`` when it was not classified."""
    if not d.classifications:
        return "", None
    cid, conf = d.classifications[0]
    idx = int(cid)
    if conf < threshold:
        return UNKNOWN, conf
    return (class_labels[idx] if 0 <= idx < len(class_labels) else cid), conf


def classify_detections(classifier: Classifier, image: np.ndarray, detections: Sequence[Detection],
                        detector_labels: Sequence[str],
                        options: SpeciesOptions = SpeciesOptions()) -> tuple[Detection, ...]:
    """``detections`` with ``classifications`` filled in for the eligible boxes of one image."""
    (out,) = _classify_many(classifier, [(image, tuple(detections))], detector_labels, options)
    return out


def _classify_many(classifier: Classifier,
                   items: Sequence[tuple[np.ndarray | None, tuple[Detection, ...]]],
                   detector_labels: Sequence[str], options: SpeciesOptions) -> list[tuple[Detection, ...]]:
    """Classify the eligible boxes of several images in shared batches (``None`` image: skip)."""
    crops, where = [], []
    for i, (image, dets) in enumerate(items):
        if image is None:
            continue
        for j, d in enumerate(dets):
            if not is_classifiable(d, detector_labels, options.min_detection_conf):
                continue
            try:
                crops.append(crop_box(image, d.bbox_xywh_norm, options.margin))
            except ValueError:  # a degenerate box from some tool: leave it unclassified
                continue
            where.append((i, j))
    out = [list(dets) for _, dets in items]
    if crops:
        probs = classifier.predict(crops, options.batch_size)
        for (i, j), p in zip(where, probs):
            out[i][j] = dataclasses.replace(out[i][j], classifications=top_classifications(p, options.top_k))
    return [tuple(x) for x in out]


def classify_results(classifier: Classifier, results: Iterable[ImageResult], files: Mapping[str, Path],
                     detector_labels: Sequence[str], options: SpeciesOptions = SpeciesOptions(),
                     max_pixels: int = 200_000_000) -> Iterator[ImageResult]:
    """Add species to a stream of detection results, reading each image again from ``files``.

    Results without eligible boxes pass straight through; the others are held until
    ``batch_size`` crops are collected, then classified together. A file that cannot be read
    again, or a batch the classifier fails on, keeps its detections unclassified (detection
    already succeeded; the run never stops for it).
    """
    pending: list[tuple[ImageResult, np.ndarray | None]] = []
    n_crops = 0

    def flush() -> Iterator[ImageResult]:
        nonlocal n_crops
        items = [(im, r.detections or ()) for r, im in pending]
        try:
            done = _classify_many(classifier, items, detector_labels, options)
        except (RuntimeError, ValueError):  # e.g. out of memory: these stay unclassified, the run goes on
            done = [dets for _, dets in items]
        for (r, _), dets in zip(pending, done):
            yield r if r.detections is None else dataclasses.replace(r, detections=dets)
        pending.clear()
        n_crops = 0

    for r in results:
        todo = [d for d in r.detections or () if is_classifiable(d, detector_labels, options.min_detection_conf)]
        if r.failed or not todo or r.file not in files:
            if not pending:
                yield r
            else:
                pending.append((r, None))  # keeps the order
            continue
        try:
            image = load_image(files[r.file], max_pixels=max_pixels)
        except ImageReadError:
            pending.append((r, None))
            continue
        pending.append((r, image))
        n_crops += len(todo)
        if n_crops >= options.batch_size:
            yield from flush()
    if pending:
        yield from flush()


@dataclass(frozen=True)
class SpeciesStep:
    """A classifier and its options, applied after detection by the pipeline layer."""

    classifier: Classifier
    options: SpeciesOptions = SpeciesOptions()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.info.labels

    def on_image(self, image: np.ndarray, detections: Sequence[Detection],
                 detector_labels: Sequence[str]) -> tuple[Detection, ...]:
        return classify_detections(self.classifier, image, detections, detector_labels, self.options)

    def on_results(self, results: Iterable[ImageResult], files: Mapping[str, Path],
                   detector_labels: Sequence[str], max_pixels: int = 200_000_000) -> Iterator[ImageResult]:
        return classify_results(self.classifier, results, files, detector_labels, self.options, max_pixels)

    def md_fields(self) -> dict:
        """Keyword arguments of ``build_results`` / ``ResultSet`` describing the classifier."""
        info = self.classifier.info
        return {"classification_categories": info.categories, "classifier": info.name,
                "classifier_metadata": {"typical_classification_threshold": self.options.threshold,
                                        "classification_detection_threshold": self.options.min_detection_conf,
                                        "crop_margin": self.options.margin, "classifier_version": info.version}}

    def species(self, d: Detection) -> tuple[str, float | None]:
        return species_of(d, self.labels, self.options.threshold)

    def caption(self, d: Detection) -> str:
        """``zebra 0.81``, ``unknown 0.32``, or ``""`` for an unclassified box."""
        name, conf = self.species(d)
        return f"{name} {conf:.2f}" if name else ""
