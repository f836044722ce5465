"""Crop detector boxes out of images for a classifier, with a margin of context."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from wildspace.errors import UsageError

DEFAULT_MARGIN = 0.1


def crop_box(image: np.ndarray, bbox_xywh_norm: Sequence[float], margin: float = DEFAULT_MARGIN,
             square: bool = False) -> np.ndarray:
    """The part of ``image`` inside a box grown by ``margin`` (see :func:`crop_window`)."""
    x0, y0, x1, y1 = crop_window(image.shape[:2], bbox_xywh_norm, margin, square)
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def crop_window(hw: tuple[int, int], bbox_xywh_norm: Sequence[float], margin: float = DEFAULT_MARGIN,
                square: bool = False) -> tuple[int, int, int, int]:
    """Pixel window ``(x0, y0, x1, y1)`` (end exclusive) of a box grown by ``margin`` on
    every side, in an image of size ``hw = (H, W)``.

    Args:
        bbox_xywh_norm: ``(x_min, y_min, width, height)`` as fractions of the image size.
        margin: fraction of the box's width (height) added left and right (top and bottom);
            ``0.1`` grows a 100 px wide box to 120 px. The result is clipped to the image.
        square: grow the shorter side to the longer one first (keeps animals' aspect ratio
            when the classifier squashes crops to a square).

    Returns:
        A window of at least 1x1 pixel inside the image.

    Raises:
        ValueError: a box with non-finite numbers, negative size or entirely outside the image,
            or a negative margin.
    """
    if margin < 0:
        raise UsageError(f"margin must be >= 0, got {margin}")
    if len(bbox_xywh_norm) != 4 or not all(math.isfinite(float(v)) for v in bbox_xywh_norm):
        raise UsageError(f"bbox must be 4 finite numbers (x_min, y_min, width, height), got {bbox_xywh_norm}")
    h, w = hw
    x, y, bw, bh = (float(v) for v in bbox_xywh_norm)
    if bw < 0 or bh < 0:
        raise UsageError(f"bbox width and height must be >= 0, got {bbox_xywh_norm}")
    px, py, pw, ph = x * w, y * h, bw * w, bh * h
    if square:
        side = max(pw, ph)
        px, py, pw, ph = px - (side - pw) / 2, py - (side - ph) / 2, side, side
    x0 = math.floor(px - margin * pw)
    y0 = math.floor(py - margin * ph)
    x1 = math.ceil(px + pw + margin * pw)
    y1 = math.ceil(py + ph + margin * ph)
    x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
    x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
    if px >= w or py >= h or px + pw <= 0 or py + ph <= 0:
        raise UsageError(f"bbox {tuple(bbox_xywh_norm)} lies outside the image")
    return x0, y0, x1, y1
