"""Grad-CAM: where in the image the evidence for a class lies.

For a class score ``y`` and a feature map ``A`` (``C`` channels over an ``h x w`` grid), each
channel is weighted by the mean gradient ``dy/dA_c`` and the weighted sum is kept where it is
positive (Selvaraju et al., 2017). The ``h x w`` map is resized to the image and scaled to
[0, 1]. Transformer feature maps (``tokens x C``) are reshaped to their patch grid first.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from wildspace.classify.models import Classifier
from wildspace.errors import UsageError


def grad_cam(classifier: Classifier, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
    """Heat-map of the evidence for ``class_index`` (default: the predicted class).

    Args:
        image: RGB ``uint8`` array ``(H, W, 3)``.

    Returns:
        ``(heatmap, class_index)``: a float32 ``(H, W)`` array in [0, 1] (all zeros when no
        location speaks for the class) and the class it explains.

    Raises:
        ValueError: ``class_index`` outside the classifier's labels.
    """
    import torch

    n = len(classifier.info.labels)
    x = classifier.preprocess([image])
    with torch.enable_grad():
        fmap, logits = classifier.split_forward(x)
        if class_index is None:
            class_index = int(classifier.probabilities_from_logits(logits.detach())[0].argmax())
        if not 0 <= class_index < n:
            raise UsageError(f"class_index {class_index} is not in 0..{n - 1}")
        (grads,) = torch.autograd.grad(classifier.score(logits, class_index).sum(), fmap)
    cam = _weighted_map(fmap.detach()[0], grads[0], classifier.prefix_tokens)
    return _to_image_size(cam, image.shape[:2]), class_index


def _weighted_map(fmap, grads, prefix_tokens: int) -> np.ndarray:
    import torch

    if fmap.ndim == 2:  # transformer tokens (T, C): drop class/register tokens, make a grid
        fmap, grads = fmap[prefix_tokens:], grads[prefix_tokens:]
        side = math.isqrt(fmap.shape[0])
        if side * side != fmap.shape[0]:
            raise UsageError(f"cannot arrange {fmap.shape[0]} tokens on a square grid for Grad-CAM")
        fmap = fmap.T.reshape(-1, side, side)
        grads = grads.T.reshape(-1, side, side)
    if fmap.ndim != 3:
        raise UsageError(f"Grad-CAM needs a (C, h, w) feature map, got shape {tuple(fmap.shape)}")
    weights = grads.mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * fmap).sum(dim=0))
    return cam.float().cpu().numpy()


def _to_image_size(cam: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    top = float(cam.max())
    if top <= 0 or not math.isfinite(top):
        return np.zeros((h, w), np.float32)
    resized = np.asarray(Image.fromarray((cam / top).astype(np.float32), mode="F")
                         .resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(resized, 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The image with the heat-map blended on top (blue = none … red = strongest)."""
    if heatmap.shape != image.shape[:2]:
        raise UsageError(f"heat-map {heatmap.shape} does not match the image {image.shape[:2]}")
    h = np.clip(heatmap, 0, 1)[..., None]
    colour = np.concatenate([h, 1 - np.abs(2 * h - 1), 1 - h], axis=2)  # red, green, blue ramps
    colour = (colour * 255).astype(np.float32)
    blend = (1 - alpha * (0.3 + 0.7 * h)) * image.astype(np.float32) + alpha * (0.3 + 0.7 * h) * colour
    return Image.fromarray(np.clip(blend, 0, 255).astype(np.uint8))
