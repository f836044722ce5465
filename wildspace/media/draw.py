"""Draw detections on an image for people to look at."""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wildspace.types import Detection

PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
           (213, 94, 0), (204, 121, 167)]  # Okabe-Ito: readable for colour-blind users


def draw_detections(image: np.ndarray, detections: tuple[Detection, ...],
                    labels: tuple[str, ...],
                    caption: Callable[[Detection], str] | None = None) -> Image.Image:
    """Boxes with ``label conf`` captions on a copy of an RGB ``uint8`` image; ``caption(d)``
    adds text after it (e.g. the species), when it returns any."""
    im = Image.fromarray(image)
    h, w = image.shape[:2]
    draw = ImageDraw.Draw(im)
    line = max(2, round(max(h, w) / 400))
    try:
        font = ImageFont.load_default(size=max(12, round(max(h, w) / 60)))
    except TypeError:  # old Pillow
        font = ImageFont.load_default()
    for d in detections:
        x, y, bw, bh = d.bbox_xywh_norm
        box = [x * w, y * h, (x + bw) * w, (y + bh) * h]
        colour = PALETTE[d.class_id % len(PALETTE)]
        draw.rectangle(box, outline=colour, width=line)
        name = labels[d.class_id] if d.class_id < len(labels) else str(d.class_id)
        text = f"{name} {d.conf:.2f}"
        extra = caption(d) if caption is not None else ""
        if extra:
            text = f"{text}: {extra}"
        tb = draw.textbbox((box[0], box[1]), text, font=font)
        ty = box[1] - (tb[3] - tb[1]) - 2 * line if box[1] > (tb[3] - tb[1]) + 2 * line else box[1]
        tb = draw.textbbox((box[0] + line, ty), text, font=font)
        draw.rectangle([tb[0] - line, tb[1] - line, tb[2] + line, tb[3] + line], fill=colour)
        draw.text((box[0] + line, ty), text, fill=(0, 0, 0), font=font)
    return im
