"""YOLOv5-style letterbox: scale the long side to the inference size, pad to the stride.

Matches the reference YOLOv5 AutoShape path exactly (see ``shared/data/weights`` golden file):
a minimum rectangle (not a square), bilinear resize on uint8 with OpenCV, centred padding
with value 114 (odd pixel at bottom/right), and boxes mapped back with the float padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxGeometry:
    """How an image of ``orig_hw`` was placed into a network input of ``input_hw`` (px)."""

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    gain: float
    pad_xy: tuple[float, float]


def letterbox_shape(h: int, w: int, size: int, stride: int) -> tuple[int, int]:
    """Network input ``(H, W)`` in px for an ``h x w`` image at inference size ``size``."""
    g = size / max(h, w)
    return (math.ceil(int(h * g) / stride) * stride, math.ceil(int(w * g) / stride) * stride)


def letterbox(image: np.ndarray, size: int, stride: int = 32) -> tuple[np.ndarray, LetterboxGeometry]:
    """Resize and pad an RGB ``uint8`` image; return the padded image and its geometry."""
    h, w = image.shape[:2]
    H, W = letterbox_shape(h, w, size, stride)
    r = min(H / h, W / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (W - nw) / 2, (H - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                   value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    gain = min(H / h, W / w)
    geom = LetterboxGeometry((h, w), (H, W), gain, ((W - w * gain) / 2, (H - h * gain) / 2))
    return image, geom


def boxes_to_original(xyxy: np.ndarray, geom: LetterboxGeometry) -> np.ndarray:
    """Map ``(N, 4)`` xyxy boxes from network-input px to original-image px, clamped."""
    out = np.asarray(xyxy, dtype=np.float64).copy()
    out[:, [0, 2]] -= geom.pad_xy[0]
    out[:, [1, 3]] -= geom.pad_xy[1]
    out /= geom.gain
    h, w = geom.orig_hw
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out
