"""Paging through a source under review: the order at a threshold and filters, and the image
with its boxes drawn. Nothing here runs a model: a threshold change only re-filters the
results (which keep the low boxes) and redraws one image from a cached thumbnail."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from wildspace.formats.categories import label_kind
from wildspace.media.images import ImageReadError, load_image
from wildspace.review.sources import Source
from wildspace.review.state import ACCEPTED, PENDING, REJECTED, ImageState, SourceStates

ALL = "all"
BANDS = {"all": (0.0, 2.0), "high (0.8 and above)": (0.8, 2.0), "medium (0.4–0.8)": (0.4, 0.8),
         "low (0.1–0.4)": (0.1, 0.4), "very low (below 0.1)": (0.0, 0.1)}
STATUSES = ("all", "unreviewed", "reviewed", "empty", "misfire")
VIEW_SIDE = 1024
CACHE_IMAGES = 24
COLOURS = {PENDING: (240, 200, 0), ACCEPTED: (0, 170, 90), REJECTED: (150, 150, 150)}
SELECTED = (230, 40, 200)


@dataclass(frozen=True)
class Filters:
    """What to page through: a detection category (label or kind), a species, a band of the
    image's top confidence, a review status, and whether the least certain come first."""

    category: str = ALL
    species: str = ALL
    band: str = ALL
    status: str = ALL
    uncertain_first: bool = False


def label(labels, class_id: int) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else str(class_id + 1)


def keep(state: ImageState, threshold: float, f: Filters, labels) -> bool:
    """Whether the image passes the filters at ``threshold``."""
    if state.result.failed:
        return False
    if f.status != ALL:
        if (f.status == "reviewed" and not state.reviewed) or (f.status != "reviewed" and state.status != f.status):
            return False
    if f.band != ALL:
        lo, hi = BANDS.get(f.band, BANDS[ALL])
        if not lo <= state.max_conf() < hi:
            return False
    if f.category != ALL or f.species != ALL:
        shown = state.shown(threshold)
        names = [label(labels, b.class_id) for b in shown]
        if f.category != ALL and not any(f.category in (n, label_kind(n)) for n in names):
            return False
        if f.species != ALL and not any(b.species == f.species for b in shown):
            return False
    return True


def uncertainty(state: ImageState, threshold: float) -> float:
    """How close the image's undecided boxes are to the threshold (smaller: less certain)."""
    return min((abs(b.conf - threshold) for b in state.boxes if b.status == PENDING and b.original is not None),
               default=1.0)


def order(states: dict[str, ImageState], threshold: float, f: Filters, labels) -> list[str]:
    """The files to page through, by name, or unreviewed and least certain first."""
    files = [name for name, s in states.items() if keep(s, threshold, f, labels)]
    if f.uncertain_first:
        return sorted(files, key=lambda n: (states[n].reviewed, uncertainty(states[n], threshold), n))
    return sorted(files)


class Thumbnails:
    """Decoded images at viewing size, the most recent ``size`` kept (shared by all visitors)."""

    def __init__(self, size: int = CACHE_IMAGES, side: int = VIEW_SIDE):
        self.size, self.side = size, side
        self._items: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path | None, max_pixels: int) -> Image.Image | None:
        if path is None:
            return None
        key = str(path)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        try:
            im = Image.fromarray(load_image(path, max_pixels=max_pixels))
        except (ImageReadError, OSError):
            return None
        im.thumbnail((self.side, self.side), Image.Resampling.BILINEAR)
        with self._lock:
            self._items[key] = im
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return im


THUMBNAILS = Thumbnails()
_names = itertools.count()


def draw(source: Source, state: ImageState, threshold: float, selected: str | None, out_dir: Path,
         max_pixels: int, thumbnails: Thumbnails = THUMBNAILS, corner: tuple[int, int] | None = None
         ) -> tuple[Path, tuple[int, int]]:
    """The image with its boxes at ``threshold`` (pending yellow, accepted green, rejected grey,
    the selected one magenta and thicker) and a cross at ``corner`` (the first corner of a box
    being drawn, in the view's pixels), written as a JPEG under ``out_dir``; and the view's size."""
    base = thumbnails.get(source.image_path(state.file), max_pixels)
    if base is None:
        w, h = (state.result.width or 4, state.result.height or 3)
        scale = VIEW_SIDE / max(w, h)
        im = Image.new("RGB", (max(1, round(w * scale)), max(1, round(h * scale))), (60, 60, 60))
    else:
        im = base.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    line = max(2, round(max(w, h) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(w, h) / 50)))
    except TypeError:
        font = ImageFont.load_default()
    labels = source.results.labels
    for b in state.boxes:
        if b.status == REJECTED and b.conf < threshold:
            continue
        if not b.shown(threshold) and b.status != REJECTED:
            continue
        x, y, bw, bh = b.bbox
        rect = [x * w, y * h, (x + bw) * w, (y + bh) * h]
        colour = SELECTED if b.key == selected else COLOURS[b.status]
        d.rectangle(rect, outline=colour, width=line * (2 if b.key == selected else 1))
        text = f"{box_number(state, b.key)} {label(labels, b.class_id)} {b.conf:.2f}"
        if b.species:
            text += f" {b.species}"
        if b.individual:
            text += f" #{b.individual}"
        d.text((rect[0] + line, rect[1] + line), text, fill=colour, font=font)
    if corner is not None:
        cx, cy, r = corner[0], corner[1], line * 6
        d.line([cx - r, cy, cx + r, cy], fill=SELECTED, width=line)
        d.line([cx, cy - r, cx, cy + r], fill=SELECTED, width=line)
    if base is None:
        d.text((10, 10), "image not available (only its boxes)", fill=(255, 255, 255), font=font)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"view-{next(_names) % 64:02d}.jpg"
    im.save(path, quality=85)
    return path, im.size


def box_number(state: ImageState, key: str) -> int:
    """Boxes are numbered 1, 2, … in the image's order (as listed next to it)."""
    return next((i for i, b in enumerate(state.boxes, start=1) if b.key == key), 0)


class OpenSource:
    """A source opened for review by one owner: its images' states, kept in step with the store."""

    def __init__(self, source: Source, store):
        self.source, self.store = source, store
        self.states = SourceStates(source.results.results, source.results.classification_categories)
        self.refresh()

    def refresh(self) -> None:
        self.states.update(self.store, self.source.id)

    def state(self, file: str) -> ImageState:
        return self.states.states[file]
