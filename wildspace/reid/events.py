"""Encounters (capture events) of an identity table, for honest leave-one-event-out tests.

An encounter is what the exports call an event (:func:`wildspace.formats.events.group_events`):
photos of one station whose capture times are at most ``gap`` apart. Re-identification uses
a longer default gap than the exports' 60 s (:data:`DEFAULT_GAP_MINUTES`): an animal that
lingers in front of a station for five minutes is still one encounter, and two cameras of a
station photographing the same visit a minute apart must not count as two.

A row with a station and a date but no time of day joins the encounter of that station and
date (one per day). A row without a station, or without any date, is its own encounter.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import TYPE_CHECKING

from wildspace.errors import UsageError

if TYPE_CHECKING:
    from wildspace.reid.gallery import GalleryData

DEFAULT_GAP_MINUTES = 30.0
_DATE = re.compile(r"^(\d{4})[-/:](\d{1,2})[-/:](\d{1,2})")
_TIME = re.compile(r"(\d{1,2})[:\-](\d{1,2})(?:[:\-](\d{1,2}))?")


def parse_time(date: str, time: str = "") -> tuple[_dt.date | None, _dt.datetime | None]:
    """``(date, datetime)`` from a date (``2012-7-5``, ``2012:07:05``, ISO date-time) and an
    optional time of day (``12:17:42``); ``None`` for what is missing or unreadable."""
    text = f"{date or ''}".strip()
    m = _DATE.match(text)
    if not m:
        return None, None
    try:
        day = _dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None, None
    rest = text[m.end():].lstrip("T ") or (time or "").strip()
    t = _TIME.match(rest)
    if not t:
        return day, None
    try:
        clock = _dt.time(int(t[1]), int(t[2]), int(t[3] or 0))
    except ValueError:
        return day, None
    return day, _dt.datetime.combine(day, clock)


def event_labels(stations, dates, gap_minutes: float = DEFAULT_GAP_MINUTES, times=None) -> list[str]:
    """One encounter label per row (see the module docstring).

    Args:
        stations: station / camera location per row ("" when unknown).
        dates: date or date-time text per row.
        gap_minutes: a new encounter starts after this many minutes without a photo.
        times: optional time-of-day text per row (when ``dates`` holds dates only).
    """
    from wildspace.formats.events import group_events

    if gap_minutes < 0:
        raise UsageError(f"the event gap must be >= 0 minutes, got {gap_minutes}")
    stations = [str(s or "").strip() for s in stations]
    dates = list(dates)
    times = [""] * len(dates) if times is None else list(times)
    labels: list[str | None] = [None] * len(stations)
    timed, station_of = {}, {}
    for i, (st, d, t) in enumerate(zip(stations, dates, times)):
        day, when = parse_time(str(d or ""), str(t or ""))
        if not st or day is None:
            labels[i] = f"row-{i}"  # nothing to group by: its own encounter
        elif when is None:
            labels[i] = f"{st}|{day.isoformat()}"
        else:
            timed[str(i)], station_of[str(i)] = when, st
    for ev in group_events(timed, station_of, gap=gap_minutes * 60.0):
        for f in ev.files:
            labels[int(f)] = f"{ev.deployment_id}|{ev.start.isoformat()}"
    return [str(v) for v in labels]


def describe(labels, stations_known: bool, times_known: bool, gap_minutes: float) -> str:
    """The sentence a report prints about the grouping it used."""
    n = len(set(labels))
    if not stations_known:
        return "left out: the query image only (no station/date columns to find its encounter)"
    how = (f"same station within {gap_minutes:g} min" if times_known
           else "same station and date")
    return f"left out: the query's whole encounter ({how}; {n} encounters)"


def gallery_encounters(gallery: GalleryData, gap_minutes: float = DEFAULT_GAP_MINUTES
                       ) -> tuple[list[str] | None, str]:
    """Encounter label per gallery image from its station (``location``) and date-time, and a
    sentence saying what is left out; ``(None, …)`` when no image has both."""
    stations = [r.location for r in gallery.records]
    dates = [r.date for r in gallery.records]
    if not any(s and d for s, d in zip(stations, dates)):
        return None, ("left out: the query image only (the table has no station and date, so "
                      "encounters are unknown; leave-one-image-out is optimistic)")
    labels = event_labels(stations, dates, gap_minutes)
    timed = any(":" in d for d in dates)
    how = f"same station within {gap_minutes:g} min" if timed else "same station and date"
    return labels, f"left out: the query's whole encounter ({how}; {len(set(labels))} encounters)"
