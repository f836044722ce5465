"""Camtrap DP 1.0.2 data packages (TDWG standard for camera-trap data; GBIF ingests them).

One package: ``datapackage.json``, ``deployments.csv``, ``media.csv``, ``observations.csv``.
Machine observations at two levels: media-level, one per detection at the threshold
(``observationType`` animal/human/vehicle/unknown, ``scientificName`` from the classifier
when its answer is at its typical threshold and the label names a taxon, bbox as Camtrap DP
wants it: top-left x, y and width, height as fractions, clipped to the image) or one
``blank`` per empty media; and event-level (:func:`event_observations`), which GBIF's
Camtrap DP → Darwin Core mapping takes. Failed files are left out (they are in the other
exports). Camtrap DP 1.0.2's media table has no event columns: each media's event is its
observations' ``eventID`` and is named in ``mediaComments`` with where its time came from.

Deployments and events: :mod:`wildspace.formats.events`; capture times:
:mod:`wildspace.formats.timestamps` (EXIF, caption-bar OCR, file-name pattern; never a copy
or export time); taxa: :mod:`wildspace.formats.taxonomy`. ``classificationTimestamp`` is the
results file's completion time.

:func:`validate_package` checks a package with frictionless against the official Camtrap DP
1.0.2 profile and table schemas, offline: they and the schemas they refer to are bundled
verbatim in ``schemas/`` (with their licences; ``schemas/SOURCES.md`` cites the commits).
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import mimetypes
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from wildspace.atomic import atomic_path
from wildspace.formats.categories import label_kind, label_of
from wildspace.formats.csv_export import safe_row
from wildspace.formats.events import (
    DEFAULT_EVENT_GAP,
    Deployment,
    assign,
    deployments_from_rows,
    group_events,
    parse_event_gap,
    parse_offset,
)
from wildspace.formats.megadetector import parse_time
from wildspace.formats.taxonomy import taxa_for
from wildspace.formats.timestamps import CaptureTime, MissingTimesError, TimeOptions, file_time, find_times
from wildspace.media.exif import gps_position

VERSION = "1.0.2"
SCHEMA_DIR = Path(__file__).parent / "schemas" / "camtrap-dp" / VERSION
PROFILE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")


def schema_url(table: str) -> str:
    return f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/{table}-table-schema.json"


@dataclass(frozen=True)
class PackageOptions:
    """What a detector cannot know: who made the package, where the cameras were and what
    clock they kept (``deployments`` from :func:`wildspace.formats.events.read_deployments_csv`
    override ``latitude``/``longitude``/``utc_offset`` per deployment), how to find capture
    times (``times``), what to do with media that have none (``missing_times``: ``refuse``
    raises :class:`MissingTimesError` naming them, ``leave-out`` leaves them out of the package
    and says so in its description, ``file-time`` uses the file's modification time flagged as
    such: ``mediaComments`` says it is not a capture time and the deployment gets
    ``timestampIssues: true``) and the gap that separates events (seconds)."""

    title: str = "Camera-trap detections (wildspace)"
    contributor: str = "wildspace user"
    latitude: float | None = None
    longitude: float | None = None
    utc_offset: str = "+00:00"
    sampling_design: str = "opportunistic"
    capture_method: str = "activityDetection"
    times: TimeOptions = TimeOptions()
    missing_times: str = "refuse"
    deployments: tuple[Deployment, ...] = ()
    event_gap: float = DEFAULT_EVENT_GAP


def with_deployments(base: PackageOptions, rows: Iterable[Mapping] = (), utc_offset: str | None = None,
                     event_gap: object = None) -> PackageOptions:
    """``base`` with the deployments, camera clocks' UTC offset and event gap given as plain
    values (the app's deployments form, a queued job's options): ``rows`` keyed by the
    deployments CSV's columns, checked as ``convert --deployments/--utc-offset/--event-gap``
    check theirs (:class:`~wildspace.formats.events.DeploymentsError` says which row and why);
    an empty offset or gap keeps ``base``'s."""
    offset = (utc_offset or "").strip() or base.utc_offset
    parse_offset(offset)
    return replace(base, deployments=tuple(deployments_from_rows(rows)), utc_offset=offset,
                   event_gap=parse_event_gap(event_gap, base.event_gap))


# Camtrap DP wants image/…, video/… or audio/…; Python's mimetypes says application/… for some
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff",
               ".tiff": "image/tiff", ".bmp": "image/bmp", ".webp": "image/webp",
               ".mp4": "video/mp4", ".m4v": "video/x-m4v", ".avi": "video/x-msvideo",
               ".mov": "video/quicktime", ".mkv": "video/x-matroska", ".asf": "video/x-ms-asf",
               ".wmv": "video/x-ms-wmv", ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".flv": "video/x-flv"}


def media_type(file: str) -> str:
    """The Camtrap DP ``fileMediatype`` of a file (always ``image/…`` or ``video/…``)."""
    ext = PurePosixPath(file).suffix.lower()
    if ext in MEDIA_TYPES:
        return MEDIA_TYPES[ext]
    guess = mimetypes.guess_type(file)[0] or ""
    return guess if guess.startswith(("image/", "video/", "audio/")) else "image/" + (ext.lstrip(".") or "unknown")


def _fmt(t: _dt.datetime) -> str:
    return t.replace(microsecond=0).isoformat()


def _media_id(file: str) -> str:
    return "m-" + hashlib.sha1(file.encode("utf-8")).hexdigest()[:16]


def _frac(v: float) -> str:
    """A box fraction as text: 4 decimals, more for a tiny positive value (never ``0.0000``)."""
    text = f"{v:.4f}"
    if v > 0 and float(text) == 0:
        text = f"{v:.3e}"
    return text


def clamp_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float] | None:
    """The part of a normalised box inside the image (a box starting left of it is narrowed,
    not moved), or None when nothing of it is inside."""
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, 1.0), min(y + h, 1.0)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def build_tables(rs, threshold: float, options: PackageOptions = PackageOptions(),
                 times: dict | None = None) -> dict:
    """Rows for the three tables plus the descriptor (a dict; nothing is written).

    ``times`` (``{file: CaptureTime | None}``) saves finding them again.

    Raises:
        MissingTimesError: ``options.missing_times == "refuse"`` and some media have no time.
    """
    default_tz = parse_offset(options.utc_offset)
    given = {d.deployment_id: d for d in options.deployments}
    kept = [r for r in sorted(rs.results, key=lambda r: r.file) if not r.failed]
    if times is None:
        times = find_times([r.file for r in kept], rs.files, options.times)
    missing = [r.file for r in kept if times.get(r.file) is None]
    if missing and options.missing_times == "file-time":  # asked for, and flagged everywhere
        times = {**times, **{f: file_time(Path(rs.files[f])) for f in missing if f in rs.files}}
        missing = [r.file for r in kept if times.get(r.file) is None]
    if missing and options.missing_times == "refuse":
        raise MissingTimesError(missing)
    kept = [r for r in kept if times.get(r.file) is not None]
    found: dict[str, CaptureTime] = {f: t for f, t in times.items() if t is not None}
    dep_of = {r.file: assign(r.file, options.deployments) for r in kept}
    stamps = {}
    for r in kept:
        t = found[r.file].time
        own = given.get(dep_of[r.file])
        tz = parse_offset(own.utc_offset) if own is not None and own.utc_offset else default_tz
        stamps[r.file] = t if t.tzinfo else t.replace(tzinfo=tz)
    events = group_events(stamps, dep_of, options.event_gap)
    event_of = {f: e for e in events for f in e.files}
    taxa = taxa_for(rs.classification_categories, getattr(rs, "classification_descriptions", None))
    cls_threshold = float((rs.classifier_metadata or {}).get("typical_classification_threshold", 0.0))
    classified_by = rs.metadata.get("model_name") or rs.detector
    if rs.classifier:
        classified_by = f"{classified_by} + {rs.classifier}"
    completed = parse_time(getattr(rs, "classification_completed", None) or getattr(rs, "completed", None))
    classified_at = _fmt(completed.replace(tzinfo=default_tz)) if completed else ""
    media, observations = [], []
    deployments: dict[str, dict] = {}
    for r in kept:
        path = Path(rs.files[r.file]) if r.file in rs.files else None
        ts, dep, event = stamps[r.file], dep_of[r.file], event_of[r.file]
        d = deployments.setdefault(dep, {"start": ts, "end": ts, "gps": None})
        d["start"], d["end"] = min(d["start"], ts), max(d["end"], ts)
        if d["gps"] is None and path is not None:
            d["gps"] = gps_position(path)
        mid = _media_id(r.file)
        media.append({"mediaID": mid, "deploymentID": dep, "captureMethod": options.capture_method,
                      "timestamp": _fmt(ts), "filePath": r.file, "filePublic": "false",
                      "fileName": PurePosixPath(r.file).name, "fileMediatype": media_type(r.file),
                      "mediaComments": f"{found[r.file].note}; event {event.event_id}"})
        base = {"deploymentID": dep, "mediaID": mid, "eventID": event.event_id,
                "eventStart": _fmt(ts), "eventEnd": _fmt(ts),
                "observationLevel": "media", "classificationMethod": "machine",
                "classifiedBy": classified_by, "classificationTimestamp": classified_at}
        dets = sorted((x for x in r.detections or () if x.conf >= threshold), key=lambda x: -x.conf)
        if not dets:
            observations.append({"observationID": f"{mid}-0", **base, "observationType": "blank"})
        for n, det in enumerate(dets):
            box = clamp_box(*det.bbox_xywh_norm)
            if box is None:
                continue
            x, y, w, h = box
            label = label_of(rs.labels, det)
            row = {"observationID": f"{mid}-{n}", **base, "observationType": label_kind(label), "count": 1,
                   "bboxX": _frac(x), "bboxY": _frac(y), "bboxWidth": _frac(w), "bboxHeight": _frac(h),
                   "classificationProbability": f"{det.conf:.3f}",
                   "observationTags": f"label:{label}"
                   + (f" | frame:{det.frame_number}" if det.frame_number is not None else "")}
            if det.classifications:
                cid, p = det.classifications[0]
                species = rs.classification_categories.get(cid, cid)
                row["observationTags"] += f" | species:{species} {p:.3f}"
                if p >= cls_threshold and cid in taxa:
                    row["scientificName"] = taxa[cid].scientific_name
                    row["classificationProbability"] = f"{p:.3f}"
            observations.append(row)
    observations += event_observations(observations, events)
    dep_files: dict[str, list[str]] = {}
    for f, dep in dep_of.items():
        dep_files.setdefault(dep, []).append(f)
    dep_rows = []
    for dep, d in sorted(deployments.items()):
        g = given.get(dep)
        tz = parse_offset(g.utc_offset) if g is not None and g.utc_offset else default_tz
        lat = g.latitude if g is not None and g.latitude is not None else options.latitude
        lon = g.longitude if g is not None and g.longitude is not None else options.longitude
        comment = ""
        if lat is None or lon is None:
            if d["gps"]:
                lat, lon = d["gps"]
            else:
                lat, lon, comment = 0.0, 0.0, ("location unknown: latitude/longitude are placeholders, "
                                               "set them before publishing")
        start = g.start if g is not None and g.start is not None else d["start"]
        end = g.end if g is not None and g.end is not None else d["end"]
        start, end = (t if t.tzinfo else t.replace(tzinfo=tz) for t in (start, end))
        issues = any(found[f].source == "file-mtime" for f in dep_files.get(dep, ()))
        dep_rows.append({"timestampIssues": "true" if issues else "", "deploymentID": dep,
                         "locationName": (g.location_name if g and g.location_name else dep),
                         "latitude": lat, "longitude": lon, "cameraID": g.camera_id if g else "",
                         "deploymentStart": _fmt(start), "deploymentEnd": _fmt(end),
                         "deploymentComments": comment})
    used = {o["scientificName"] for o in observations if o.get("scientificName")}
    taxonomic = sorted((t.as_taxonomic() for t in taxa.values() if t.scientific_name in used),
                       key=lambda t: t["scientificName"])
    taxonomic = list({t["scientificName"]: t for t in taxonomic}.values())
    descriptor = _descriptor(options, dep_rows, media, taxonomic, missing)
    return {"deployments": dep_rows, "media": media, "observations": observations,
            "descriptor": descriptor, "left_out": missing}


def event_observations(observations: list[dict], events) -> list[dict]:
    """Event-level observations from media-level ones: per event and (type, species,
    individual) one row whose ``count`` is the most seen at once in one media (an identified
    individual counts 1); an event whose media are all blank is one ``blank`` row."""
    by_event: dict[str, list[dict]] = {}
    for o in observations:
        if o.get("observationLevel") == "media" and o.get("eventID"):
            by_event.setdefault(o["eventID"], []).append(o)
    out = []
    for e in events:
        rows = by_event.get(e.event_id, [])
        groups: dict[tuple, dict[str, list[dict]]] = {}
        for o in rows:
            if o["observationType"] == "blank":
                continue
            key = (o["observationType"], o.get("scientificName", ""), o.get("individualID", ""))
            groups.setdefault(key, {}).setdefault(o["mediaID"], []).append(o)
        base = {"deploymentID": e.deployment_id, "mediaID": "", "eventID": e.event_id,
                "eventStart": _fmt(e.start), "eventEnd": _fmt(e.end), "observationLevel": "event"}
        if not groups:
            if rows:
                src = rows[0]
                out.append({"observationID": f"{e.event_id}-0", **base, "observationType": "blank",
                            **{k: src.get(k, "")
                               for k in ("classificationMethod", "classifiedBy", "classificationTimestamp")}})
            continue
        for k, ((kind, name, individual), per_media) in enumerate(sorted(groups.items())):
            members = [o for os_ in per_media.values() for o in os_]
            human = all(o.get("classificationMethod") == "human" for o in members)
            probs = [float(o["classificationProbability"]) for o in members if o.get("classificationProbability")]
            row = {"observationID": f"{e.event_id}-{k}", **base, "observationType": kind,
                   "count": 1 if individual else max(len(v) for v in per_media.values()),
                   "classificationMethod": "human" if human else "machine",
                   "classifiedBy": members[0].get("classifiedBy", ""),
                   "classificationTimestamp": max(o.get("classificationTimestamp", "") for o in members),
                   "observationTags": f"media:{len(per_media)}"}
            if name:
                row["scientificName"] = name
            if individual:
                row["individualID"] = individual
            if probs and not human:
                row["classificationProbability"] = f"{max(probs):.3f}"
            out.append(row)
    return out


def _descriptor(options: PackageOptions, deps: list[dict], media: list[dict], taxonomic: list[dict],
                left_out: list[str]) -> dict:
    points = [[d["longitude"], d["latitude"]] for d in deps] or [[0.0, 0.0]]
    spatial = ({"type": "Point", "coordinates": points[0]} if len(points) == 1
               else {"type": "MultiPoint", "coordinates": points})
    times = sorted(m["timestamp"][:10] for m in media)
    resources = [{"name": t, "path": f"{t}.csv", "profile": "tabular-data-resource", "format": "csv",
                  "mediatype": "text/csv", "encoding": "utf-8", "schema": schema_url(t)} for t in TABLES]
    out: dict[str, Any] = {
        "resources": resources, "profile": PROFILE_URL,
        "name": "wildspace-detections", "id": str(uuid.uuid4()),
        "created": _fmt(_dt.datetime.now(_dt.timezone.utc)).replace("+00:00", "Z"),
        "title": options.title,
        "contributors": [{"title": options.contributor, "role": "contributor"}],
        "project": {"title": options.title, "samplingDesign": options.sampling_design,
                    "captureMethod": [options.capture_method], "individualAnimals": False,
                    "observationLevel": ["media", "event"]},
        "spatial": spatial, "taxonomic": taxonomic,
    }
    if times:
        out["temporal"] = {"start": times[0], "end": times[-1]}
    else:  # no media: the profile still wants a period; say it is empty
        out["temporal"] = {"start": "1970-01-01", "end": "1970-01-01"}
        out["description"] = "No media with a capture time."
    if left_out:
        shown = ", ".join(left_out[:20]) + (" …" if len(left_out) > 20 else "")
        out["description"] = (out.get("description", "") + f" {len(left_out)} file(s) without a capture "
                              f"time are left out: {shown}").strip()
    return out


def _fields(table: str) -> list[str]:
    schema = json.loads((SCHEMA_DIR / f"{table}-table-schema.json").read_text())
    return [f["name"] for f in schema["fields"]]


def write_package(rs, out_dir: str | Path, threshold: float,
                  options: PackageOptions = PackageOptions(), zip_path: str | Path | None = None,
                  tables: dict | None = None) -> Path:
    """Write the package folder (and a zip of it when ``zip_path`` is given; returns that).
    ``tables`` from :func:`build_tables` saves building them again."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = tables if tables is not None else build_tables(rs, threshold, options)
    for t in TABLES:
        with atomic_path(out / f"{t}.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=_fields(t), extrasaction="raise")
            w.writeheader()
            w.writerows(safe_row(row) for row in tables[t])  # no cell a spreadsheet runs
    with atomic_path(out / "datapackage.json") as tmp:
        tmp.write_text(json.dumps(tables["descriptor"], indent=2), encoding="utf-8")
    if zip_path is None:
        return out
    zip_path = Path(zip_path)
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("datapackage.json", *(f"{t}.csv" for t in TABLES)):
            z.write(out / name, name)
    return zip_path


def validate_package(package_dir: str | Path) -> list[str]:
    """Validate offline against the Camtrap DP 1.0.2 profile and table schemas.

    Returns the list of problems (empty when valid).
    """
    import frictionless

    src = Path(package_dir)
    try:
        descriptor = json.loads((src / "datapackage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"datapackage.json: {exc}"]
    if not isinstance(descriptor, dict):
        return ["datapackage.json: must be a JSON object"]
    problems = []
    with tempfile.TemporaryDirectory(prefix="camtrap-validate-") as tmp_name:
        tmp = Path(tmp_name)
        resources = descriptor.get("resources")
        if not isinstance(resources, list):
            problems.append(f"datapackage.json: resources must be a list, got {type(resources).__name__}")
            resources = []
        for res in resources:
            if not isinstance(res, dict):
                continue
            path = res.get("path")
            if isinstance(path, str):
                if not _is_safe_relative(path):
                    problems.append(f"resource {res.get('name')!r}: unsafe path {path!r}")
                    res["path"] = "missing.csv"
                    continue
                if (src / path).is_file():
                    (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src / path, tmp / path)
        (tmp / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
        # the official profile and schemas by their URLs, answered from the verbatim copies
        # bundled in schemas/ (no network); every data path was checked and copied above
        from wildspace.formats.offline_schemas import offline_session  # imports requests (~50 ms)

        with frictionless.system.use_context(http_session=offline_session()):
            report = frictionless.validate(str(tmp / "datapackage.json"))
        problems += [f"{e.type}: {e.message}" for e in report.errors]
        for task in report.tasks:
            problems += [f"{task.name}: {e.type}: {e.message}" for e in task.errors]
    return problems


def _is_safe_relative(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and not path.startswith(("~", "."))
