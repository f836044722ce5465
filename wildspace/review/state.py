"""A result's boxes with a reviewer's corrections applied (the corrections are replayed in
the order they were made, so the latest one wins).

A box is ``pending`` until a reviewer accepts or rejects it (a redrawn or added box is
accepted). An image is ``unreviewed`` until it is accepted as shown (``reviewed``), or marked
``empty`` or ``misfire``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from wildspace.errors import UsageError
from wildspace.formats.megadetector import detection_to_dict
from wildspace.review.store import Change, Correction
from wildspace.types import Detection, ImageResult

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"


@dataclass(frozen=True)
class Box:
    """One box of an image under review (a model's detection, or one a reviewer added)."""

    key: str  # "d<k>": the model's k-th detection of the image; "n<hex>": added by a reviewer
    class_id: int
    conf: float  # the model's confidence (1.0 for an added box)
    bbox: tuple[float, float, float, float]
    status: str = PENDING
    species: str | None = None
    species_by: str = ""  # "model", "human" or "" (none)
    individual: str | None = None
    redrawn: bool = False
    original: Detection | None = None  # the model's detection (None for an added box)

    @property
    def added(self) -> bool:
        return self.original is None

    def shown(self, threshold: float) -> bool:
        """On screen at ``threshold``: accepted boxes always, pending ones at or above it."""
        return self.status == ACCEPTED or (self.status == PENDING and self.conf >= threshold)


@dataclass(frozen=True)
class ImageState:
    """An image's review state: its status, its boxes, who reviewed it last and when."""

    file: str
    result: ImageResult
    status: str = "unreviewed"
    boxes: tuple[Box, ...] = ()
    reviewer: str | None = None
    at: str | None = None
    touched: bool = False  # any correction at all

    @property
    def reviewed(self) -> bool:
        return self.status != "unreviewed"

    def shown(self, threshold: float) -> list[Box]:
        return [b for b in self.boxes if b.shown(threshold)]

    def box(self, key: str | None) -> Box | None:
        return next((b for b in self.boxes if b.key == key), None)

    def max_conf(self) -> float:
        return max((b.conf for b in self.boxes if b.original is not None), default=0.0)


def model_species(d: Detection, categories: Mapping[str, str]) -> str | None:
    """The classifier's top species of a box, if it has one."""
    if not d.classifications:
        return None
    cid, _ = max(d.classifications, key=lambda c: c[1])
    return categories.get(str(cid), str(cid))


def initial(result: ImageResult, categories: Mapping[str, str]) -> ImageState:
    """An image as the model left it."""
    boxes = tuple(Box(f"d{k}", d.class_id, float(d.conf), _bbox(d.bbox_xywh_norm),
                      species=model_species(d, categories), species_by="model" if d.classifications else "",
                      original=d)
                  for k, d in enumerate(result.detections or ()))
    return ImageState(result.file, result, boxes=boxes)


def fold(result: ImageResult, categories: Mapping[str, str], corrections: Iterable[Correction]) -> ImageState:
    """``result`` with ``corrections`` (of this image, in order) applied."""
    state = initial(result, categories)
    boxes = {b.key: b for b in state.boxes}
    status, reviewer, at, touched = state.status, None, None, False
    for c in corrections:
        touched, reviewer, at = True, c.reviewer, c.at
        if c.target == "image":
            if c.action == "status":
                status = c.value
            continue
        if c.action == "add":
            v = c.value or {}
            boxes[c.target] = Box(c.target, int(v.get("class_id", 0)), 1.0, _bbox(v.get("bbox")), ACCEPTED)
            continue
        b = boxes.get(c.target)
        if b is None:  # a box this result does not have (e.g. an older run): nothing to change
            continue
        if c.action == "accept":
            b = replace(b, status=ACCEPTED)
        elif c.action == "reject":
            b = replace(b, status=REJECTED)
        elif c.action == "bbox":
            b = replace(b, bbox=_bbox(c.value), redrawn=True, status=ACCEPTED)
        elif c.action == "category":
            b = replace(b, class_id=int(c.value))
        elif c.action == "species":
            b = replace(b, species=c.value or None, species_by="human" if c.value else "")
        elif c.action == "individual":
            b = replace(b, individual=c.value or None)
        boxes[c.target] = b
    return ImageState(result.file, result, status, tuple(boxes.values()), reviewer, at, touched)


def _bbox(v) -> tuple[float, float, float, float]:
    x, y, w, h = (float(t) for t in v)
    return (x, y, w, h)


def check_bbox(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """A box ``x, y, w, h`` (fractions of the image) clipped to the image; clear error otherwise."""
    vals = [float(v) for v in (x, y, w, h)]
    if any(v != v for v in vals):
        raise UsageError("the box needs four numbers x, y, width, height (fractions of the image, 0–1)")
    x, y, w, h = vals
    x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    w, h = min(w, 1.0 - x), min(h, 1.0 - y)
    if w <= 0 or h <= 0:
        raise UsageError("the box must have a positive width and height inside the image "
                         "(x, y, width, height as fractions of the image, 0–1)")
    return (round(x, 4), round(y, 4), round(w, 4), round(h, 4))


MIN_DRAWN_PX = 3


def corners_bbox(a: tuple[int, int], b: tuple[int, int], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box whose opposite corners are the pixels ``a`` and ``b`` (clicked in either order)
    of an image of ``size`` (width, height), as fractions x, y, width, height (both corner
    pixels inside it). Corners closer than a few pixels are a slip, not a box: clear error."""
    W, H = size
    if W <= 0 or H <= 0:
        raise UsageError("the image has no size")
    (left, right), (top, bottom) = sorted((a[0], b[0])), sorted((a[1], b[1]))
    if right - left + 1 < MIN_DRAWN_PX or bottom - top + 1 < MIN_DRAWN_PX:
        raise UsageError("the two corners are too close: click two opposite corners of the animal")
    return check_bbox(left / W, top / H, (right + 1 - left) / W, (bottom + 1 - top) / H)


def _original(b: Box) -> dict | None:
    return detection_to_dict(b.original) if b.original is not None else None


def accept_image(state: ImageState, threshold: float) -> list[Change]:
    """The image is right as shown: boxes on screen accepted, pending ones below the threshold
    rejected, the image reviewed."""
    out = [Change(state.file, b.key, "accept" if b.shown(threshold) else "reject", original=_original(b))
           for b in state.boxes if b.status == PENDING]
    return out + [Change(state.file, "image", "status", "reviewed")]


def mark_image(state: ImageState, status: str) -> list[Change]:
    """``empty`` or ``misfire``: every box rejected."""
    out = [Change(state.file, b.key, "reject", original=_original(b)) for b in state.boxes if b.status != REJECTED]
    return out + [Change(state.file, "image", "status", status)]


def box_change(state: ImageState, key: str, action: str, value=None) -> Change:
    """One correction of box ``key`` (its original detection kept in the row)."""
    b = state.box(key)
    if b is None:
        raise UsageError(f"this image has no box {key}")
    return Change(state.file, key, action, value, original=_original(b))


@dataclass
class SourceStates:
    """Every image's state for one source, kept up to date from the store incrementally."""

    results: Sequence[ImageResult]
    categories: Mapping[str, str]
    states: dict[str, ImageState] = field(default_factory=dict)
    by_file: dict[str, list[Correction]] = field(default_factory=dict)
    last_id: int = 0

    def __post_init__(self):
        self.states = {r.file: initial(r, self.categories) for r in self.results}
        self._results = {r.file: r for r in self.results}

    def update(self, store, source: str) -> None:
        """Apply the corrections saved since the last update."""
        new = store.corrections(source, after=self.last_id)
        if not new:
            return
        changed = set()
        for c in new:
            self.by_file.setdefault(c.file, []).append(c)
            changed.add(c.file)
            self.last_id = max(self.last_id, c.id)
        for f in changed:
            if f in self._results:
                self.states[f] = fold(self._results[f], self.categories, self.by_file[f])
