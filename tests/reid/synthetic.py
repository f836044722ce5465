"""Synthetic identity-labelled photos: each animal is a unique coat texture placed on a
different random background, shifted, scaled and rotated from photo to photo."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def coat(seed: int, size: int = 160) -> np.ndarray:
    """A unique spotted pattern (the 'animal')."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 200, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(60):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(3, 10)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 90)
    return np.stack([img, (img * 0.8).astype(np.uint8), (img * 0.6).astype(np.uint8)], -1)


def photo(animal: np.ndarray, seed: int, size=(480, 360)) -> np.ndarray:
    """The animal pasted on a smooth random background with a random similarity transform."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(60, 180, (9, 12, 3)).astype(np.uint8)
    canvas = Image.fromarray(bg).resize(size, Image.BICUBIC)
    patch = Image.fromarray(animal)
    scale = rng.uniform(0.85, 1.15)
    patch = patch.resize((int(patch.width * scale), int(patch.height * scale)), Image.BICUBIC)
    patch = patch.rotate(rng.uniform(-15, 15), expand=True, fillcolor=(128, 128, 128))
    x = int(rng.integers(10, size[0] - patch.width - 10))
    y = int(rng.integers(30, size[1] - patch.height - 30))
    canvas.paste(patch, (x, y))
    return np.asarray(canvas)


def write_set(folder: Path, counts=(("ana", 3), ("bo", 3), ("cy", 2), ("solo", 1)),
              viewpoints: dict | None = None) -> Path:
    """Images + ``identities.csv`` in ``folder``; returns the CSV path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (name, n) in enumerate(counts):
        animal = coat(1000 + k)
        for i in range(n):
            f = f"{name}_{i}.jpg"
            Image.fromarray(photo(animal, 50 * k + i)).save(folder / f, quality=92)
            rows.append({"file": f, "identity": name,
                         "viewpoint": (viewpoints or {}).get(f, ""), "station": f"S{i % 2}",
                         "date": "2024-01-0%d" % (i + 1)})
    path = folder / "identities.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
