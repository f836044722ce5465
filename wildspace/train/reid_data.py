"""Identity-labelled images and open-set re-ID metrics, shared by training, evaluation and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildspace.errors import NotFound, UsageError


def load_identity_images(folder: Path, table: Path, input_size: int | None = None, max_pixels: int = 200_000_000):
    """``(images, identities, skipped)``: RGB crops (bbox when the table has one) and labels."""
    from wildspace.media.images import ImageReadError, load_image
    from wildspace.reid.build import crop_box, read_identity_table

    if not Path(folder).is_dir():
        raise NotFound(f"image folder not found: {folder}")
    images, ids, skipped = [], [], []
    for row in read_identity_table(table):
        try:
            rgb = load_image(Path(folder) / row.file, max_pixels)
        except ImageReadError as exc:
            skipped.append((row.file, str(exc)))
            continue
        if row.bbox:
            rgb = crop_box(rgb, row.bbox)
        if input_size:  # keep memory small: long side at most 2x the network input
            from PIL import Image

            h, w = rgb.shape[:2]
            g = 2 * input_size / max(h, w)
            if g < 1:
                rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * g)), max(1, round(h * g)))))
        images.append(rgb)
        ids.append(row.identity)
    if len(set(ids)) < 2:
        raise UsageError(f"{table}: need at least two identities with readable images")
    return images, ids, skipped


def load_folder_images(folder: Path, input_size: int, max_pixels: int = 200_000_000):
    """``(images, files, skipped)``: every readable image under ``folder`` (recursively),
    long side at most twice ``input_size`` (unlabeled SimCLR training)."""
    from wildspace.media.images import IMAGE_EXTENSIONS, ImageReadError
    from wildspace.train.images import load_reduced

    if not Path(folder).is_dir():
        raise NotFound(f"image folder not found: {folder}")
    images, files, skipped = [], [], []
    for p in sorted(Path(folder).rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        try:
            images.append(load_reduced(str(p), input_size, max_pixels))
            files.append(str(p))
        except ImageReadError as exc:
            skipped.append((str(p), str(exc)))
    if len(images) < 2:
        raise UsageError(f"{folder}: need at least two readable images, found {len(images)}")
    return images, files, skipped


def reid_markdown(m: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return "\n".join([
        f"- queries: {m['queries']} ({m['known_queries']} whose identity is in the gallery)",
        f"- top-1 **{fmt(m['top1'])}**, top-5 {fmt(m['top5'])}, mAP {fmt(m['mAP'])}",
        "- MAP@k: " + ", ".join(f"@{k} {fmt(v)}" for k, v in m["map_at_k"].items()),
        f"- BAKS {fmt(m['baks'])}, BAUS {fmt(m['baus'])} (open-set: a query is called known when its "
        "best score is above the median best score)"])


def open_set_metrics(sim: np.ndarray, q_ids, g_ids, exclude=None) -> dict:
    from wildspace.reid.metrics import evaluate

    masked = sim if exclude is None else np.where(exclude, -np.inf, sim)
    best = masked.max(axis=1)
    decision = best >= np.median(best[np.isfinite(best)]) if np.isfinite(best).any() else None
    return evaluate(sim, q_ids, g_ids, exclude=exclude, known_decision=decision)
