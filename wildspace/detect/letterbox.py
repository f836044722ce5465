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

from wildspace.errors import UsageError

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
    # a side that scales below 1 px (a 65000x2 strip) still gets one stride, never 0
    return (math.ceil(max(int(h * g), 1) / stride) * stride, math.ceil(max(int(w * g), 1) / stride) * stride)


def letterbox(image: np.ndarray, size: int, stride: int = 32) -> tuple[np.ndarray, LetterboxGeometry]:
    """Resize and pad an RGB ``uint8`` image; return the padded image and its geometry.

    Any shape of at least 1x1 px works (a side that would scale to 0 px is kept at 1 px).

    Raises:
        ValueError: an empty image (a side of 0 px).
    """
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise UsageError(f"cannot letterbox an empty image ({w}x{h} px)")
    H, W = letterbox_shape(h, w, size, stride)
    r = min(H / h, W / w)
    nw, nh = max(int(round(w * r)), 1), max(int(round(h * r)), 1)  # never a 0-pixel resize
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


def stride_letterbox(image: np.ndarray, size: int, stride: int) -> np.ndarray:
    """The ultralytics predictor's letterbox for one image (``LetterBox(auto=True)``), without
    ultralytics: fit inside ``size x size`` (rounded up to the stride), keep the aspect ratio,
    pad each side to the next stride multiple, centred (odd pixel at bottom/right), value 114.
    """
    size = -(-size // stride) * stride
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise UsageError(f"cannot letterbox an empty image ({w}x{h} px)")
    r = min(size / h, size / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (size - nw) % stride / 2, (size - nh) % stride / 2
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))


def unletterbox_boxes(xyxy: np.ndarray, input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> np.ndarray:
    """Map float32 ``(N, 4)`` xyxy boxes from a :func:`stride_letterbox` input back to the
    original image (same float32 arithmetic as ultralytics' ``scale_boxes``), clipped."""
    H, W = input_hw
    h, w = orig_hw
    gain = min(H / h, W / w)
    nh, nw = max(round(h * gain), 1), max(round(w * gain), 1)
    gy, gx = nh / h, nw / w
    px, py = round((W - nw) / 2 - 0.1), round((H - nh) / 2 - 0.1)
    out = np.array(xyxy, dtype=np.float32, copy=True)
    out[:, [0, 2]] -= np.float32(px)
    out[:, [1, 3]] -= np.float32(py)
    out[:, [0, 2]] /= np.float32(gx)
    out[:, [1, 3]] /= np.float32(gy)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out
