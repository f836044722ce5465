"""The Review tab's backend, without Gradio: each visitor's place in a source (the image
shown, the selected box, threshold and filters) and the corrections their keys and buttons make.

Each visitor session has a :class:`Cursor` on the server, changed under its lock, so quick
key presses are applied one after another in the order they arrive. The order of the images
is fixed when a source is opened or the threshold, filters or source change, not after each
correction (the image shown never jumps away under the reviewer).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from wildspace.errors import UsageError
from wildspace.review import progress
from wildspace.review.sources import Sources
from wildspace.review.state import (
    PENDING,
    REJECTED,
    ImageState,
    accept_image,
    box_change,
    check_bbox,
    corners_bbox,
    mark_image,
)
from wildspace.review.store import Change, ReviewStores
from wildspace.review.view import Filters, OpenSource, box_number, draw, label, order

RELOAD_RUNNING_S = 2.0


@dataclass
class Cursor:
    """One visitor session's place in a source."""

    source_id: str | None = None
    files: list[str] = field(default_factory=list)
    pos: int = 0
    selected: str | None = None
    threshold: float = 0.2
    filters: Filters = Filters()
    view_size: tuple[int, int] | None = None  # the (width, height) of the image last shown
    corner: tuple[str, int, int, tuple[int, int]] | None = None  # a box's first corner: file, x, y, view size
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def file(self) -> str | None:
        return self.files[self.pos] if self.files and 0 <= self.pos < len(self.files) else None


@dataclass(frozen=True)
class View:
    """What the tab shows for a cursor."""

    image: Path | None
    where: str
    boxes: str
    box_choices: list[tuple[str, str]]
    selected: str | None
    bbox: tuple[float, float, float, float] | None
    species: str | None
    individual: str | None
    progress: str
    message: str = ""


class ReviewService:
    """Sources, stores and cursors of one app (see the module docstring)."""

    def __init__(self, sources: Sources, stores: ReviewStores, views_dir: Path, max_pixels: int,
                 max_open: int = 32, max_cursors: int = 2000):
        self.sources, self.stores = sources, stores
        self.views_dir, self.max_pixels = Path(views_dir), max_pixels
        self.max_open, self.max_cursors = max_open, max_cursors
        self._open: OrderedDict[tuple[str, str], tuple[float, OpenSource]] = OrderedDict()
        self._cursors: OrderedDict[tuple[str, str], Cursor] = OrderedDict()
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------
    def cursor(self, owner: str, session: str | None) -> Cursor:
        key = (owner, session or "")
        with self._lock:
            c = self._cursors.get(key)
            if c is None:
                c = self._cursors[key] = Cursor()
            self._cursors.move_to_end(key)
            while len(self._cursors) > self.max_cursors:
                self._cursors.popitem(last=False)
            return c

    def opened(self, owner: str, source_id: str, reload: bool = False) -> OpenSource:
        """The owner's source, opened once and kept (a running job is read again when asked
        to ``reload`` and its copy is a few seconds old). Raises ``SourceNotFound``."""
        key = (owner, source_id)
        with self._lock:
            hit = self._open.get(key)
        if hit is not None:
            loaded, o = hit
            if not (reload and o.source.running and time.monotonic() - loaded > RELOAD_RUNNING_S):
                o.refresh()
                return o
        o = OpenSource(self.sources.load(owner, source_id), self.stores.of(owner))
        with self._lock:
            self._open[key] = (time.monotonic(), o)
            self._open.move_to_end(key)
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return o

    def _reorder(self, o: OpenSource, c: Cursor) -> None:
        current = c.file
        c.files = order(o.states.states, c.threshold, c.filters, o.source.results.labels)
        c.pos = c.files.index(current) if current in c.files else 0
        self._default_selection(o, c)

    def _default_selection(self, o: OpenSource, c: Cursor) -> None:
        s = o.state(c.file) if c.file else None
        if s is None:
            c.selected = None
            return
        shown = s.shown(c.threshold)
        if c.selected in {b.key for b in shown}:
            return
        candidates = [b for b in shown if b.status == PENDING] or shown
        c.selected = candidates[0].key if candidates else None

    def _save(self, owner: str, c: Cursor, changes: list[Change], reviewer: str) -> None:
        if changes and c.source_id is not None:
            self.stores.of(owner).save(c.source_id, changes, reviewer)

    # -- what the tab calls ----------------------------------------------------------------
    def open(self, owner: str, session: str | None, source_id: str, threshold: float,
             filters: Filters | None = None) -> View:
        c = self.cursor(owner, session)
        with c.lock:
            o = self.opened(owner, source_id, reload=True)
            if c.source_id != source_id:
                c.source_id, c.files, c.pos, c.selected = source_id, [], 0, None
            c.threshold, c.filters = float(threshold), filters or Filters()
            self._reorder(o, c)
            return self._view(o, c)

    def set_view(self, owner: str, session: str | None, threshold: float, filters: Filters,
                 reload: bool = False) -> View:
        """A new threshold or filters (or, with ``reload``, what a running job has done since)."""
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c, reload)
            c.threshold, c.filters = float(threshold), filters
            self._reorder(o, c)
            return self._view(o, c)

    def move(self, owner: str, session: str | None, step: int) -> View:
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c)
            if c.files:
                c.pos = min(max(c.pos + step, 0), len(c.files) - 1)
            c.selected, c.corner = None, None
            self._default_selection(o, c)
            return self._view(o, c)

    def select(self, owner: str, session: str | None, key: str | None) -> View:
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c)
            if c.file and key and o.state(c.file).box(key) is not None:
                c.selected = key
            return self._view(o, c)

    def act(self, owner: str, session: str | None, action: str, reviewer: str, **kw) -> View:
        """``accept`` (the image as shown), ``reject`` (the selected box), ``empty``,
        ``misfire``, ``accept_box``, ``delete_box``, ``redraw`` / ``add`` (``bbox``, ``class_id``),
        ``species`` / ``individual`` (``value``), ``unreview``. Raises ``ValueError`` with a
        message for a correction that cannot be made."""
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c)
            if c.file is None:
                raise UsageError("no image here: open a source, or change the filters")
            s = o.state(c.file)
            changes, advance = self._changes(s, c, action, kw)
            self._save(owner, c, changes, reviewer)
            o.refresh()
            s = o.state(c.file)
            if advance and c.pos < len(c.files) - 1:
                c.pos += 1
                c.selected = None
            elif action == "reject":
                c.selected = None
            elif action == "add":
                c.selected = changes[0].target
            self._default_selection(o, c)
            return self._view(o, c, message=self._said(action, s))

    def click(self, owner: str, session: str | None, x: int, y: int, then: str, reviewer: str,
              class_id: int = 0) -> View:
        """A click at pixel ``(x, y)`` of the image shown. The first click marks a box's corner;
        the second, the opposite one: the box (fractions) goes into the view's ``bbox`` when
        ``then`` is ``fill``, redraws the selected box with ``redraw``, is added with ``add``."""
        if then not in ("fill", "redraw", "add"):
            raise UsageError(f"unknown drawing mode '{then}'")
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c)
            if c.file is None or c.view_size is None:
                raise UsageError("no image here: open a source, or change the filters")
            W, H = c.view_size
            x, y = int(x), int(y)
            if not (0 <= x < W and 0 <= y < H):
                raise UsageError("click inside the image")
            first = c.corner
            if first is None or first[0] != c.file or first[3] != c.view_size:
                c.corner = (c.file, x, y, c.view_size)
                return self._view(o, c, message="First corner marked: click the opposite corner.")
            c.corner = None
            bbox = corners_bbox((first[1], first[2]), (x, y), (W, H))
            if then == "fill":
                v = self._view(o, c, message="Box drawn: press *Redraw box* or *Add box*.")
                return replace(v, bbox=bbox)
        return self.act(owner, session, then, reviewer, bbox=bbox, class_id=class_id)

    def _changes(self, s: ImageState, c: Cursor, action: str, kw: dict) -> tuple[list[Change], bool]:
        if action == "accept":
            return accept_image(s, c.threshold), True
        if action in ("empty", "misfire"):
            return mark_image(s, action), True
        if action == "unreview":
            return [Change(s.file, "image", "status", "unreviewed")], False
        if action == "add":
            bbox = check_bbox(*kw["bbox"])
            return [Change(s.file, f"n{uuid.uuid4().hex[:12]}", "add",
                           {"bbox": list(bbox), "class_id": int(kw.get("class_id", 0))})], False
        key = c.selected
        if action == "reject" and key is None:
            pending = [b for b in s.shown(c.threshold) if b.status == PENDING]
            key = pending[0].key if pending else None
        if key is None or s.box(key) is None:
            raise UsageError("no box selected: choose one in the Box list (or press r with a box shown)")
        if action in ("reject", "delete_box"):
            return [box_change(s, key, "reject")], False
        if action == "accept_box":
            return [box_change(s, key, "accept")], False
        if action == "redraw":
            return [box_change(s, key, "bbox", list(check_bbox(*kw["bbox"])))], False
        if action == "category":
            return [box_change(s, key, "category", int(kw["class_id"]))], False
        if action in ("species", "individual"):
            value = (kw.get("value") or "").strip() or None
            if value is not None and len(value) > 200:
                raise UsageError(f"a {action} name is at most 200 characters")
            changes = [box_change(s, key, action, value)]
            named = s.box(key)
            if named is not None and named.status == PENDING:  # naming a box says it is a real one
                changes.insert(0, box_change(s, key, "accept"))
            return changes, False
        raise UsageError(f"unknown review action '{action}'")

    @staticmethod
    def _said(action: str, s: ImageState) -> str:
        return {"accept": f"Accepted {s.file}.", "empty": f"Marked {s.file} empty.",
                "misfire": f"Marked {s.file} a misfire.", "reject": "Box rejected.",
                "delete_box": "Box deleted.", "accept_box": "Box accepted.", "redraw": "Box redrawn.",
                "add": "Box added.", "species": "Species set.", "individual": "Individual set.",
                "category": "Category set.", "unreview": "Back to unreviewed."}.get(action, "")

    def _need(self, owner: str, c: Cursor, reload: bool = False) -> OpenSource:
        if c.source_id is None:
            raise UsageError("choose a source to review first (a batch, a job or an upload)")
        return self.opened(owner, c.source_id, reload=reload)

    def running(self, owner: str, session: str | None) -> bool:
        """Whether this session is reviewing a job that is still running."""
        c = self.cursor(owner, session)
        with self._lock:
            hit = self._open.get((owner, c.source_id or ""))
        return hit is not None and hit[1].source.running

    def selected(self, owner: str, session: str | None) -> tuple[OpenSource, ImageState, str]:
        """The open source, the image shown and the key of its selected box (``UsageError``
        when no box is selected)."""
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c)
            s = o.state(c.file) if c.file else None
            if s is None or s.box(c.selected) is None:
                raise UsageError("no box selected: choose one in the Box list")
            return o, s, str(c.selected)

    def view(self, owner: str, session: str | None) -> View:
        c = self.cursor(owner, session)
        with c.lock:
            return self._view(self._need(owner, c), c)

    def progress_rows(self, owner: str, session: str | None) -> tuple[OpenSource, list[dict]]:
        c = self.cursor(owner, session)
        with c.lock:
            o = self._need(owner, c)
        return o, progress.precision_recall(o)

    # -- rendering ---------------------------------------------------------------------------
    def _view(self, o: OpenSource, c: Cursor, message: str = "") -> View:
        summary = progress.markdown(o)
        if c.file is None:
            where = ("No image matches these filters." if o.states.states else "This source has no images yet.")
            return View(None, where, "", [], None, None, None, None, summary, message)
        s = o.state(c.file)
        labels = o.source.results.labels
        corner = c.corner[1:3] if c.corner is not None and c.corner[0] == c.file else None
        image, c.view_size = draw(o.source, s, c.threshold, c.selected, self.views_dir, self.max_pixels,
                                  corner=corner)
        shown = [b for b in s.boxes if b.shown(c.threshold) or (b.status == REJECTED and b.conf >= c.threshold)]
        lines, choices = [], []
        for b in shown:
            n = box_number(s, b.key)
            text = (f"{n}. {label(labels, b.class_id)} {b.conf:.2f} — {b.status}"
                    + (" (added)" if b.added else " (redrawn)" if b.redrawn else "")
                    + (f", species {b.species}" if b.species else "")
                    + (f", individual {b.individual}" if b.individual else ""))
            lines.append(("**→** " if b.key == c.selected else "") + text)
            choices.append((text, b.key))
        hidden = sum(1 for b in s.boxes if b.status == PENDING and not b.shown(c.threshold))
        if hidden:
            lines.append(f"({hidden} more below the threshold {c.threshold:.3f})")
        where = (f"Image **{c.pos + 1} of {len(c.files)}**: `{s.file}` — **{s.status}**"
                 + (f" by {s.reviewer}" if s.reviewer and s.reviewed else ""))
        sel = s.box(c.selected)
        return View(image, where, "  \n".join(lines) or "No boxes at this threshold.", choices, c.selected,
                    sel.bbox if sel else None, sel.species if sel else None, sel.individual if sel else None,
                    summary, message)


def default_reviewer(owner: str) -> str:
    """The name corrections carry when the reviewer gives none (no secret ids: a hash)."""
    from wildspace.runs.disk import owner_tag

    if owner.startswith("hf:"):
        return owner[3:]
    return f"reviewer-{owner_tag(owner)[:8]}"
