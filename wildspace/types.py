"""The shared vocabulary of wildspace: small frozen dataclasses passed between layers.

Conventions used everywhere:
- ``bbox_xywh_norm``: ``[x_min, y_min, width, height]`` as fractions of the (EXIF-rotated)
  image width/height, the MegaDetector convention.
- ``class_id``: the model's 0-based output index. The MegaDetector category id is
  ``str(class_id + 1)``.
- ``conf``: a probability in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        class_id: 0-based index into the detector's labels.
        conf: confidence in [0, 1].
        bbox_xywh_norm: ``(x_min, y_min, width, height)`` normalised to the image size.
        classifications: a classifier's top answers for the box, best first, as
            ``(category id, conf)`` pairs; the id is the classifier's 0-based label index as a
            string (MegaDetector's ``classification_categories`` key). Empty when unclassified.
    """

    class_id: int
    conf: float
    bbox_xywh_norm: tuple[float, float, float, float]
    frame_number: int | None = None  # videos: 0-based index of the decoded frame
    classifications: tuple[tuple[str, float], ...] = ()

    @property
    def category(self) -> str:
        """MegaDetector category key (``class_id + 1`` as a string)."""
        return str(self.class_id + 1)


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one input file: detections, or a failure reason.

    ``detections`` is ``None`` exactly when ``failure`` is set.
    """

    file: str
    detections: tuple[Detection, ...] | None
    failure: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None  # videos only
    frames_processed: tuple[int, ...] | None = None  # videos only: sampled frame numbers

    @property
    def failed(self) -> bool:
        return self.failure is not None


@dataclass(frozen=True)
class DetectorInfo:
    """What a built detector is: its name, labels and thresholds."""

    name: str
    labels: tuple[str, ...]
    input_size: int
    typical_threshold: float = 0.2
    conservative_threshold: float = 0.05
    version: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityMatch:
    """One candidate individual for a re-ID query.

    Attributes:
        identity: the gallery's name for the animal.
        score: the best match score over that animal's gallery images (method-specific units:
            cosine similarity, verified local-feature matches, or a fused probability).
        probability: calibrated probability that the query shows this animal, in [0, 1].
        image_index: row of the gallery image that gave the best score.
        viewpoint: that image's flank (``left``/``right``/``""``).
    """

    identity: str
    score: float
    probability: float
    image_index: int
    viewpoint: str = ""


@dataclass(frozen=True)
class LookupResult:
    """The answer to "who is this animal?".

    ``verdict`` is ``known`` when the top match's probability reaches the gallery's calibrated
    decision level, else ``new``; ``identity`` is set only for ``known``.
    """

    matches: tuple[IdentityMatch, ...]
    verdict: str
    identity: str | None
    probability: float
    method: str
    threshold: float
