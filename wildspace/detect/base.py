"""What every detector family provides, and the helpers they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Protocol, Sequence

import numpy as np

from wildspace.types import Detection, DetectorInfo


@dataclass(frozen=True)
class Prepared:
    """An image made ready for a family's network (e.g. letterboxed).

    Images with the same ``key`` can share a forward pass.
    """

    key: Hashable
    data: Any
    orig_hw: tuple[int, int]
    meta: Any = None


class Detector(Protocol):
    info: DetectorInfo

    def prepare(self, image: np.ndarray) -> Prepared:
        """CPU-side work for one RGB ``uint8`` image (safe to run in worker threads)."""

    def run(self, batch: Sequence[Prepared], conf_threshold: float) -> list[tuple[Detection, ...]]:
        """Detections for each prepared image, ``conf >= conf_threshold``, by descending conf."""


class BuiltDetector(Detector, Protocol):
    """A detector built from a weight file by :mod:`wildspace.detect.factory`."""

    labels: tuple[str, ...]
    precision: str  # ``fp32`` or ``bf16``
    precision_reason: str  # set by the factory: why that precision


def detect_images(detector: Detector, images: Sequence[np.ndarray],
                  conf_threshold: float) -> list[tuple[Detection, ...]]:
    """Convenience: prepare and run a list of images, grouping those that share a shape."""
    prepared = [detector.prepare(im) for im in images]
    out: list[tuple[Detection, ...] | None] = [None] * len(prepared)
    groups: dict[Hashable, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.key, []).append(i)
    for idx in groups.values():
        for i, dets in zip(idx, detector.run([prepared[i] for i in idx], conf_threshold)):
            out[i] = dets
    return out  # type: ignore[return-value]


def xyxy_to_detections(xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray,
                       orig_hw: tuple[int, int], conf_threshold: float) -> tuple[Detection, ...]:
    """Pixel xyxy boxes of an ``orig_hw`` image to :class:`Detection` (normalised xywh)."""
    h, w = orig_hw
    dets = []
    for (x1, y1, x2, y2), c, k in zip(xyxy.tolist(), conf.tolist(), cls.tolist()):
        if c < conf_threshold:
            continue
        dets.append(Detection(int(k), float(c), (x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h)))
    dets.sort(key=lambda d: -d.conf)
    return tuple(dets)
