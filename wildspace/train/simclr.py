"""SimCLR (Chen et al. 2020): self-supervised embeddings from unlabeled crops.

Each crop gives two random views (lightly's ``SimCLRTransform``: random resized crop,
horizontal flip, colour jitter, grey scale, Gaussian blur, then the backbone's normalisation);
backbone → projection head (lightly's ``SimCLRProjectionHead``, two layers) → NT-Xent loss
(lightly's ``NTXentLoss``): each view must pick its partner out of the ``2N - 1`` other views
of the batch, at softmax temperature ``temperature``. The projection head only serves the loss
and is dropped at export: the embedding is the backbone's pooled features, as for every
``family: timm`` embedder. Labels are never used for training.
"""

from __future__ import annotations

from typing import Sequence, cast

import numpy as np


def ntxent_loss(z1, z2, temperature: float):
    """NT-Xent of two batches of projections ``(N, d)`` whose rows ``i`` are views of one crop
    (mean over the ``2N`` views; cosine similarity; no memory bank)."""
    from lightly.loss import NTXentLoss

    return NTXentLoss(temperature=temperature)(z1, z2)


def projection_head(in_dim: int, out_dim: int = 128):
    """The SimCLR projection head: Linear → BatchNorm → ReLU → Linear (hidden size ``in_dim``)."""
    from lightly.models.modules import SimCLRProjectionHead

    return SimCLRProjectionHead(input_dim=in_dim, hidden_dim=in_dim, output_dim=out_dim)


class TwoViews:
    """``views(indices)`` → two augmented float batches ``(n, 3, s, s)`` of the same crops.

    Random numbers come from torch's global generator, which the trainer seeds per epoch.
    """

    def __init__(self, images: Sequence[np.ndarray], input_size: int, mean, std):
        from lightly.transforms import SimCLRTransform
        from PIL import Image

        limit = 2 * input_size  # crops come from a copy at most twice the input size
        self.images = []
        for im in images:
            pil = Image.fromarray(np.ascontiguousarray(im))
            g = limit / max(pil.size)
            if g < 1:
                pil = pil.resize((max(1, round(pil.width * g)), max(1, round(pil.height * g))),
                                 Image.Resampling.BILINEAR)
            self.images.append(pil.convert("RGB"))
        self.transform = SimCLRTransform(input_size=input_size, min_scale=0.2,
                                         normalize={"mean": list(mean), "std": list(std)})

    def __len__(self) -> int:
        return len(self.images)

    def views(self, indices: Sequence[int]):
        import torch

        # two normalised tensors per image (the transform's declared type also allows PIL images)
        pairs = [cast("list[torch.Tensor]", self.transform(self.images[i])) for i in indices]
        return torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs])
