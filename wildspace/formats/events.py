"""Deployments (which camera, where, when) and events (sequences of frames of one visit).

Deployments come from a CSV the user gives (``--deployments``: ``deploymentID`` and, each
optional, ``folder`` or ``filePattern`` saying which files belong to it, ``latitude``,
``longitude``, ``cameraID``, ``locationName``, ``deploymentStart``, ``deploymentEnd``,
``utcOffset`` such as ``+02:00``; other fields of the Camtrap DP deployments table are
ignored, any other column is refused) or the app's deployments form (the same columns, read by
the same :func:`deployments_from_rows`), else from the folder structure: a file's parent folder,
without the ``DCIM/100RECNX``-style folders cameras add, is its deployment.

Events: within one deployment, media sorted by time are one event while each is at most
``gap`` seconds after the previous one (60 s by default, as MegaDetector's sequence tools
``SequenceOptions.episode_interval_seconds`` group them).
"""

from __future__ import annotations

import csv
import datetime as _dt
import difflib
import fnmatch
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
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


DEPLOYMENT_COLUMNS = ("deploymentID", "folder", "filePattern", "latitude", "longitude", "cameraID",
                      "locationName", "deploymentStart", "deploymentEnd", "utcOffset")
_ALIASES = {"utc_offset": "utcOffset"}
# camtrap_dp.SCHEMA_DIR's table (not imported from there: camtrap_dp imports this module)
_DEPLOYMENTS_SCHEMA = Path(__file__).parent / "schemas" / "camtrap-dp" / "1.0.2" / "deployments-table-schema.json"


@lru_cache(maxsize=1)
def _camtrap_fields() -> tuple[str, ...]:
    """The official Camtrap DP deployments table's fields (a package's own deployments.csv
    can be given as it is; the fields not in :data:`DEPLOYMENT_COLUMNS` are ignored)."""
    schema = json.loads(_DEPLOYMENTS_SCHEMA.read_text(encoding="utf-8"))
    return tuple(f["name"] for f in schema["fields"])


def ignored_columns(names: Iterable[str]) -> list[str]:
    """The Camtrap DP deployment fields among ``names`` that are read but not used (e.g. ``habitat``)."""
    return [n for n in names if n not in DEPLOYMENT_COLUMNS and n not in _ALIASES and n in _camtrap_fields()]


def _check_columns(names: Iterable[str], where: str) -> None:
    for n in names:
        if n and n not in DEPLOYMENT_COLUMNS and n not in _ALIASES and n not in _camtrap_fields():
            close = difflib.get_close_matches(n, DEPLOYMENT_COLUMNS, n=1, cutoff=0.5) or [
                c for c in DEPLOYMENT_COLUMNS if n.lower() and c.lower().startswith(n.lower())][:1]
            hint = f"did you mean {close[0]}? " if close else ""
            raise DeploymentsError(f"{where}unknown column {n!r} ({hint}columns: {', '.join(DEPLOYMENT_COLUMNS)})")


def _cell(value: object) -> str:
    """A cell as text: None and NaN (an empty cell of a numeric table column) are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _number(row: Mapping[str, str], key: str, lo: float, hi: float, where: str) -> float | None:
    raw = row.get(key, "")
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise DeploymentsError(f"{where}: {key} {raw!r} is not a number") from None
    if not lo <= v <= hi:
        raise DeploymentsError(f"{where}: {key} {v} is outside [{lo}, {hi}]")
    return v


def _time(row: Mapping[str, str], key: str, where: str) -> _dt.datetime | None:
    raw = row.get(key, "")
    if not raw:
        return None
    try:
        return _dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DeploymentsError(f"{where}: {key} {raw!r} is not an ISO date-time (2024-05-01T08:00:00)") from None


def _normalised(raw: Mapping, where: str) -> dict[str, str]:
    """A row's cells as text under our column names (``utc_offset`` → ``utcOffset``)."""
    if None in raw:
        raise DeploymentsError(f"{where}: more cells than the header has columns")
    row: dict[str, str] = {}
    for key, value in raw.items():
        name = _ALIASES.get(str(key).strip(), str(key).strip())
        if not name:  # a column with no name (a trailing comma in the header)
            if _cell(value):
                raise DeploymentsError(f"{where}: {_cell(value)!r} is in a column with no name")
            continue
        row[name] = row.get(name) or _cell(value)
    return row


def deployments_from_rows(rows: Iterable[Mapping], where: str = "row", first: int = 1) -> list[Deployment]:
    """Deployments from rows keyed by the deployments CSV's columns (:data:`DEPLOYMENT_COLUMNS`;
    ``deploymentID`` required; cells may be text, numbers, None or NaN); blank rows are skipped.
    The app's form and :func:`read_deployments_csv` both read through this: the same checks, and
    messages that name the row (``{where} {n}``, counting from ``first``) and the column."""
    rows = list(rows)
    source = where.rsplit(" ", 1)[0] + ": " if " " in where else ""
    _check_columns(dict.fromkeys(str(k).strip() for r in rows for k in r if k is not None), source)
    out: list[Deployment] = []
    seen: set[str] = set()
    for i, raw in enumerate(rows, start=first):
        at = f"{where} {i}"
        row = _normalised(raw, at)
        if not any(row.values()):
            continue
        dep_id = row.get("deploymentID", "")
        if not dep_id:
            raise DeploymentsError(f"{at}: deploymentID is empty")
        if dep_id in seen:
            raise DeploymentsError(f"{at}: deploymentID {dep_id!r} appears twice")
        seen.add(dep_id)
        offset = row.get("utcOffset") or None
        if offset is not None:
            try:
                parse_offset(offset)
            except DeploymentsError as exc:
                raise DeploymentsError(f"{at}: {exc}") from None
        start, end = _time(row, "deploymentStart", at), _time(row, "deploymentEnd", at)
        if start and end and (start.tzinfo is None) == (end.tzinfo is None) and end < start:
            raise DeploymentsError(f"{at}: deploymentEnd {row['deploymentEnd']} is before deploymentStart "
                                   f"{row['deploymentStart']}")
        out.append(Deployment(
            dep_id, folder=row.get("folder") or None, file_pattern=row.get("filePattern") or None,
            latitude=_number(row, "latitude", -90, 90, at), longitude=_number(row, "longitude", -180, 180, at),
            camera_id=row.get("cameraID") or None, location_name=row.get("locationName") or None,
            start=start, end=end, utc_offset=offset))
    return out


def read_deployment_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a deployments CSV as text under our column names (header checked: it needs
    ``deploymentID`` and no unknown column); :func:`deployments_from_rows` checks the cells."""
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeploymentsError(f"cannot read deployments CSV {name}: {exc.__class__.__name__}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if "deploymentID" not in header:
        raise DeploymentsError(f"{name}: needs a header with deploymentID (and folder or filePattern, "
                               "latitude, longitude, cameraID, deploymentStart, deploymentEnd, utcOffset)")
    _check_columns(header, f"{name}: ")
    return [_normalised(row, f"{name} line {i}") for i, row in enumerate(reader, start=2)]


def read_deployments_csv(path: str | Path) -> list[Deployment]:
    """Read a deployments CSV (columns in the module docstring; ``deploymentID`` required)."""
    name = Path(path).name
    deployments = deployments_from_rows(read_deployment_rows(path), f"{name} line", 2)
    if not deployments:
        raise DeploymentsError(f"{name}: no deployments under the header")
    return deployments


def parse_event_gap(value: object, default: float = DEFAULT_EVENT_GAP) -> float:
    """Seconds between media that start a new event (empty: ``default``; ``DeploymentsError``
    unless a number >= 0)."""
    text = str(value).strip() if isinstance(value, float) else _cell(value)  # NaN is no gap
    if not text:
        return default
    try:
        gap = float(text)
    except ValueError:
        gap = math.nan
    if not math.isfinite(gap) or gap < 0:
        raise DeploymentsError(f"the event gap must be a number of seconds >= 0, not {text!r}")
    return gap


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
