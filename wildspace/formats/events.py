"""Deployments (which camera, where, when) and events (sequences of frames of one visit).

Deployments come from a CSV the user gives (``--deployments``: ``deploymentID`` and, each
optional, ``folder`` or ``filePattern`` saying which files belong to it, ``latitude``,
``longitude``, ``cameraID``, ``locationName``, ``deploymentStart``, ``deploymentEnd``,
``utcOffset`` such as ``+02:00``), else from the folder structure: a file's parent folder,
without the ``DCIM/100RECNX``-style folders cameras add, is its deployment.

Events: within one deployment, media sorted by time are one event while each is at most
``gap`` seconds after the previous one (60 s by default, as MegaDetector's sequence tools
``SequenceOptions.episode_interval_seconds`` group them).
"""

from __future__ import annotations

import csv
import datetime as _dt
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from wildspace.errors import UsageError, WildspaceError

DEFAULT_EVENT_GAP = 60.0
FLAT_DEPLOYMENT = "deployment-1"
_CAMERA_FOLDER = re.compile(r"^(DCIM|\d{3}[A-Z0-9_]{5})$", re.IGNORECASE)


class DeploymentsError(WildspaceError, ValueError):
    """The deployments CSV is unreadable or wrong; the message says which row and why."""


@dataclass(frozen=True)
class Deployment:
    """One camera at one place for one period."""

    deployment_id: str
    folder: str | None = None
    file_pattern: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    camera_id: str | None = None
    location_name: str | None = None
    start: _dt.datetime | None = None
    end: _dt.datetime | None = None
    utc_offset: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def matches(self, file: str) -> bool:
        if self.folder is not None:
            folder = self.folder.strip("/")
            return folder == "" or file.startswith(folder + "/")
        if self.file_pattern is not None:
            return fnmatch.fnmatchcase(file, self.file_pattern)
        return False


def parse_offset(text: str) -> _dt.tzinfo:
    """``+02:00`` / ``-0500`` / ``Z`` / ``UTC`` → tzinfo (``DeploymentsError`` otherwise)."""
    t = text.strip().upper()
    if t in ("Z", "UTC", "GMT", ""):
        return _dt.timezone.utc
    m = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?", t)
    if not m or int(m[2]) > 14 or int(m[3] or 0) > 59:
        raise DeploymentsError(f"UTC offset {text!r} is not like +02:00")
    delta = _dt.timedelta(hours=int(m[2]), minutes=int(m[3] or 0))
    return _dt.timezone(-delta if m[1] == "-" else delta)


def _number(row: dict, key: str, lo: float, hi: float, where: str) -> float | None:
    raw = (row.get(key) or "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise DeploymentsError(f"{where}: {key} {raw!r} is not a number") from None
    if not lo <= v <= hi:
        raise DeploymentsError(f"{where}: {key} {v} is outside [{lo}, {hi}]")
    return v


def _time(row: dict, key: str, where: str) -> _dt.datetime | None:
    raw = (row.get(key) or "").strip()
    if not raw:
        return None
    try:
        return _dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DeploymentsError(f"{where}: {key} {raw!r} is not an ISO date-time (2024-05-01T08:00:00)") from None


def read_deployments_csv(path: str | Path) -> list[Deployment]:
    """Read a deployments CSV (columns in the module docstring; ``deploymentID`` required)."""
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeploymentsError(f"cannot read deployments CSV {name}: {exc.__class__.__name__}") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "deploymentID" not in rows[0]:
        raise DeploymentsError(f"{name}: needs a header with deploymentID (and folder or filePattern, "
                               "latitude, longitude, cameraID, deploymentStart, deploymentEnd, utcOffset)")
    out, seen = [], set()
    for i, row in enumerate(rows, start=2):
        where = f"{name} line {i}"
        dep_id = (row.get("deploymentID") or "").strip()
        if not dep_id:
            raise DeploymentsError(f"{where}: deploymentID is empty")
        if dep_id in seen:
            raise DeploymentsError(f"{where}: deploymentID {dep_id!r} appears twice")
        seen.add(dep_id)
        offset = (row.get("utcOffset") or row.get("utc_offset") or "").strip() or None
        if offset is not None:
            parse_offset(offset)
        folder = row.get("folder")
        pattern = (row.get("filePattern") or "").strip() or None
        out.append(Deployment(
            dep_id, folder=folder.strip() if folder and folder.strip() else None, file_pattern=pattern,
            latitude=_number(row, "latitude", -90, 90, where), longitude=_number(row, "longitude", -180, 180, where),
            camera_id=(row.get("cameraID") or "").strip() or None,
            location_name=(row.get("locationName") or "").strip() or None,
            start=_time(row, "deploymentStart", where), end=_time(row, "deploymentEnd", where),
            utc_offset=offset))
    return out


def folder_deployment(file: str) -> str:
    """The deployment a file's path implies: its parent folder without camera-made
    ``DCIM``/``100RECNX`` folders (a flat folder: ``deployment-1``)."""
    parts = [p for p in PurePosixPath(file).parts[:-1] if not _CAMERA_FOLDER.match(p)]
    return "/".join(parts) if parts else FLAT_DEPLOYMENT


def assign(file: str, deployments: Iterable[Deployment]) -> str:
    """The deployment ID for ``file``: the given deployment whose folder (longest) or file
    pattern matches it, else the one deployment given with neither, else the folder's."""
    deployments = list(deployments)
    by_folder = [d for d in deployments if d.folder is not None and d.matches(file)]
    if by_folder:
        return max(by_folder, key=lambda d: len(d.folder or "")).deployment_id
    by_pattern = [d for d in deployments if d.file_pattern is not None and d.matches(file)]
    if by_pattern:
        return by_pattern[0].deployment_id
    catch_all = [d for d in deployments if d.folder is None and d.file_pattern is None]
    if len(catch_all) == 1:
        return catch_all[0].deployment_id
    return folder_deployment(file)


@dataclass(frozen=True)
class Event:
    """Media of one deployment within ``gap`` seconds of each other."""

    event_id: str
    deployment_id: str
    start: _dt.datetime
    end: _dt.datetime
    files: tuple[str, ...]


def group_events(times: Mapping[str, _dt.datetime], deployment_of: Mapping[str, str],
                 gap: float = DEFAULT_EVENT_GAP) -> list[Event]:
    """Events per deployment: a new one starts when the time since the previous media is
    more than ``gap`` seconds. Event IDs are stable (from the deployment and first file)."""
    if gap < 0:
        raise UsageError("the event gap must be >= 0 seconds")
    by_dep: dict[str, list[tuple[_dt.datetime, str]]] = {}
    for f, t in times.items():
        by_dep.setdefault(deployment_of[f], []).append((t, f))
    events = []
    for dep, items in sorted(by_dep.items()):
        items.sort()
        run: list[tuple[_dt.datetime, str]] = []
        for t, f in items:
            if run and (t - run[-1][0]).total_seconds() > gap:
                events.append(_event(dep, run))
                run = []
            run.append((t, f))
        if run:
            events.append(_event(dep, run))
    return events


def _event(dep: str, run: list[tuple[_dt.datetime, str]]) -> Event:
    digest = hashlib.sha1(f"{dep}\0{run[0][1]}".encode("utf-8")).hexdigest()[:12]
    return Event(f"e-{digest}", dep, run[0][0], run[-1][0], tuple(f for _, f in run))
