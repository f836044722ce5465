"""Images for training in memory: decoded once (reduced), augmented per epoch.

Evaluation preprocessing is exactly what :class:`wildspace.classify.models.Classifier` does
at inference (the whole image squashed to ``input_size`` square, bilinear, ImageNet
normalisation), so held-out metrics measure the model as the app will run it. Training adds
random resized crops, horizontal flips and colour jitter on top.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from wildspace.media.images import ImageReadError
from wildspace.train.data import Sample


def load_reduced(path: str, input_size: int, max_pixels: int = 200_000_000) -> np.ndarray:
    """RGB uint8 image with its long side at most ``2 * input_size`` px (aspect kept).

    Big JPEGs are decoded at reduced scale (libjpeg DCT scaling), which is much faster.
    """
    from PIL import Image

    from wildspace.media.images import load_image_sized

    limit = 2 * input_size
    rgb, _ = load_image_sized(path, max_pixels, reduce_to=limit)
    h, w = rgb.shape[:2]
    if max(h, w) <= limit:
        return rgb
    g = limit / max(h, w)
    im = Image.fromarray(rgb).resize((max(1, round(w * g)), max(1, round(h * g))), Image.Resampling.BILINEAR)
    return np.asarray(im)


def decode_all(samples: Sequence[Sample], input_size: int,
               renew: Callable[[], object] | None = None) -> tuple[dict[int, np.ndarray], list[tuple[str, str]]]:
    """Decode every sample once; unreadable files are reported, not fatal.

    Returns:
        ``{index: rgb}`` for the readable images and ``[(path, reason)]`` for the others.
    """
    images, failures = {}, []
    for i, s in enumerate(samples):
        try:
            images[i] = load_reduced(s.path, input_size)
        except ImageReadError as exc:
            failures.append((s.path, str(exc)))
        if renew is not None and i % 16 == 0:
            renew()
    return images, failures


class ImageDataset:
    """A torch-style dataset over decoded images (``__getitem__`` → ``(tensor, label index)``)."""

    def __init__(self, images: Sequence[np.ndarray], targets: Sequence[int], input_size: int,
                 mean: Sequence[float], std: Sequence[float], augment: bool):
        import torch
        from PIL import Image
        from torchvision.transforms import v2

        self.targets = list(targets)
        s = input_size
        self.size, self.mean, self.std = s, np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if augment:  # squash once to a little more than the input size; crops come from that
            big = round(s * 1.15)
            self.images = [np.array(Image.fromarray(im).resize((big, big), Image.Resampling.BILINEAR))
                           for im in images]
            self.transform = v2.Compose([
                v2.ToImage(), v2.RandomResizedCrop(s, scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True),
                v2.RandomHorizontalFlip(), v2.ColorJitter(0.2, 0.2, 0.2, 0.02),
                v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
        else:  # the inference preprocessing, computed once
            self.transform = None
            self.images = [eval_array(im, s, self.mean, self.std) for im in images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        import torch

        if self.transform is not None:
            return self.transform(self.images[i]), self.targets[i]
        return torch.from_numpy(self.images[i]), self.targets[i]


def eval_array(rgb: np.ndarray, size: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(3, size, size)`` float32, the inference preprocessing of ``Classifier.preprocess``."""
    from PIL import Image

    x = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)).astype(np.float32) / 255.0
    return ((x - mean) / std).transpose(2, 0, 1).copy()
