"""What every runtime of an exported detector network shares: its input layout and its error."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from wildspace.errors import WildspaceError

T = TypeVar("T")  # what a network's ``apply`` makes of its output


class BackendUnavailable(WildspaceError, RuntimeError):
    """The requested inference backend cannot be used for this model on this machine."""


def nchw_float(arr: np.ndarray) -> np.ndarray:
    """``B x H x W x 3`` uint8 -> contiguous ``B x 3 x H x W`` float32 in [0, 1], in one pass:
    the same float32 division by 255 as the torch paths (the same bits), 4x less time than
    transpose, astype, divide and a contiguous copy."""
    x = np.empty((arr.shape[0], 3, *arr.shape[1:3]), np.float32)
    np.divide(arr.transpose(0, 3, 1, 2), np.float32(255), out=x, dtype=np.float32)
    return x


def probe_batch(height: int, width: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    """A deterministic image-like ``(batch, 3, H, W)`` float32 batch in [0, 1]."""
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (batch, 3, height // 16 + 1, width // 16 + 1)).astype(np.float32)
    smooth = smooth.repeat(16, 2).repeat(16, 3)[:, :, :height, :width]
    noise = rng.normal(0, 12, (batch, 3, height, width)).astype(np.float32)
    return (np.clip(smooth + noise, 0, 255) / 255).astype(np.float32)
