"""Boxes drawn with two clicks on the shown image: the pixels of the two corners (either order)
become a box in fractions of the image; the second click fills the numbers, redraws the
selected box or adds one; a click on another image starts again."""

from __future__ import annotations

import pytest

from wildspace.errors import UsageError
from wildspace.review.state import corners_bbox

S = "sess"


def test_pixels_to_fractions_in_any_corner_order():
    size = (200, 100)
    box = corners_bbox((20, 10), (119, 59), size)  # both corner pixels inside the box
    assert box == (0.1, 0.1, 0.5, 0.5)
    for a, b in (((119, 59), (20, 10)), ((20, 59), (119, 10)), ((119, 10), (20, 59))):
        assert corners_bbox(a, b, size) == box
    assert corners_bbox((0, 0), (199, 99), size) == (0.0, 0.0, 1.0, 1.0)  # the whole image
    assert corners_bbox((150, 50), (400, 300), size) == (0.75, 0.5, 0.25, 0.5)  # clipped to the image
    with pytest.raises(UsageError, match="too close"):
        corners_bbox((50, 50), (51, 80), size)  # a slip (a double click), not a box


def test_two_clicks_fill_redraw_or_add(review):
    service, owner, sid = review
    v = service.open(owner, S, sid, 0.2)
    c = service.cursor(owner, S)
    assert "cam1/a.jpg" in v.where and c.view_size == (160, 120) and v.selected == "d0"
    before = v.bbox

    v = service.click(owner, S, 16, 12, "fill", "Ann")
    assert "First corner" in v.message and v.bbox == before  # nothing changed yet
    v = service.click(owner, S, 95, 71, "fill", "Ann")  # the opposite corner: numbers filled
    assert v.bbox == (0.1, 0.1, 0.5, 0.5) and "Redraw box" in v.message
    assert service.opened(owner, sid).state("cam1/a.jpg").box("d0").bbox == tuple(before)  # not saved

    service.click(owner, S, 95, 71, "redraw", "Ann")
    v = service.click(owner, S, 16, 12, "redraw", "Ann")  # reversed order: same box
    box = service.opened(owner, sid).state("cam1/a.jpg").box("d0")
    assert box.bbox == (0.1, 0.1, 0.5, 0.5) and box.redrawn and box.status == "accepted"
    assert "(redrawn)" in v.boxes

    service.click(owner, S, 80, 60, "add", "Ann")
    v = service.click(owner, S, 159, 119, "add", "Ann", class_id=1)
    s = service.opened(owner, sid).state("cam1/a.jpg")
    (added,) = [b for b in s.boxes if b.added]
    assert added.bbox == (0.5, 0.5, 0.5, 0.5) and added.class_id == 1 and v.selected == added.key

    service.click(owner, S, 10, 10, "add", "Ann")  # a first corner here...
    service.move(owner, S, +1)  # ...is forgotten on another image
    v = service.click(owner, S, 50, 50, "add", "Ann")
    assert "First corner" in v.message and "cam1/b.jpg" in v.where
    with pytest.raises(UsageError, match="inside the image"):
        service.click(owner, S, 160, 10, "add", "Ann")
    with pytest.raises(UsageError, match="drawing mode"):
        service.click(owner, S, 10, 10, "paint", "Ann")
