"""Camtrap DP 1.0.2 data packages (TDWG standard for camera-trap data; GBIF ingests them).

One package: ``datapackage.json``, ``deployments.csv``, ``media.csv``, ``observations.csv``.
Observations are media-level and machine-made: one per detection at the threshold
(``observationType`` animal/human/vehicle/unknown, bbox as Camtrap DP wants it: top-left x, y
and width, height as fractions of the image), and one ``blank`` observation for an image
with none. Files that failed are left out of the package (they are in the other exports).

Deployments are the first folder of each file's path (camera-trap cards are usually one
folder per camera), else one deployment. Capture times come from EXIF; camera clocks carry
no timezone, so ``utc_offset`` says which one they keep.

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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wildspace.atomic import atomic_path
from wildspace.formats.categories import label_kind, label_of
from wildspace.formats.csv_export import safe_row
from wildspace.formats.offline_schemas import offline_session
from wildspace.media.exif import capture_time, gps_position

VERSION = "1.0.2"
SCHEMA_DIR = Path(__file__).parent / "schemas" / "camtrap-dp" / VERSION
PROFILE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")


def schema_url(table: str) -> str:
    return f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/{table}-table-schema.json"


@dataclass(frozen=True)
class PackageOptions:
    title: str = "Camera-trap detections (wildspace)"
    contributor: str = "wildspace user"
    latitude: float | None = None
    longitude: float | None = None
    utc_offset: str = "+00:00"
    sampling_design: str = "opportunistic"
    capture_method: str = "activityDetection"


def _fmt(t: _dt.datetime) -> str:
    return t.replace(microsecond=0).isoformat()


def _deployment_of(file: str) -> str:
    parts = PurePosixPath(file).parts
    return parts[0] if len(parts) > 1 else "deployment-1"


def _media_id(file: str) -> str:
    return "m-" + hashlib.sha1(file.encode("utf-8")).hexdigest()[:16]


def _timestamp(path: Path | None, tz: _dt.tzinfo) -> tuple[_dt.datetime, str]:
    if path is not None:
        t = capture_time(path)
        if t is not None:
            return (t if t.tzinfo else t.replace(tzinfo=tz)), ""
        if path.exists():
            mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc)
            return mtime, "no EXIF capture time: file modification time used"
    return _dt.datetime.now(_dt.timezone.utc), "no capture time available: export time used"


def build_tables(rs, threshold: float, options: PackageOptions = PackageOptions()) -> dict:
    """Rows for the three tables plus the descriptor (a dict; nothing is written)."""
    tz = _dt.datetime.strptime(options.utc_offset.replace("Z", "+00:00"), "%z").tzinfo
    classified_by = rs.metadata.get("model_name") or rs.detector
    classified_at = _dt.datetime.now(_dt.timezone.utc)
    media, observations = [], []
    deployments: dict[str, dict] = {}
    for r in sorted(rs.results, key=lambda r: r.file):
        if r.failed:
            continue
        path = Path(rs.files[r.file]) if r.file in rs.files else None
        ts, comment = _timestamp(path, tz)
        dep = _deployment_of(r.file)
        d = deployments.setdefault(dep, {"start": ts, "end": ts, "gps": None})
        d["start"], d["end"] = min(d["start"], ts), max(d["end"], ts)
        if d["gps"] is None and path is not None:
            d["gps"] = gps_position(path)
        mid = _media_id(r.file)
        mediatype = mimetypes.guess_type(r.file)[0] or "image/jpeg"
        media.append({"mediaID": mid, "deploymentID": dep, "captureMethod": options.capture_method,
                      "timestamp": _fmt(ts), "filePath": r.file, "filePublic": "false",
                      "fileName": PurePosixPath(r.file).name, "fileMediatype": mediatype,
                      "mediaComments": comment})
        base = {"deploymentID": dep, "mediaID": mid, "eventStart": _fmt(ts), "eventEnd": _fmt(ts),
                "observationLevel": "media", "classificationMethod": "machine",
                "classifiedBy": classified_by, "classificationTimestamp": _fmt(classified_at)}
        dets = sorted((x for x in r.detections or () if x.conf >= threshold), key=lambda x: -x.conf)
        if not dets:
            observations.append({"observationID": f"{mid}-0", **base, "observationType": "blank"})
        for n, det in enumerate(dets):
            x, y, w, h = (min(max(v, 0.0), 1.0) for v in det.bbox_xywh_norm)
            if w <= 0 or h <= 0:
                continue
            observations.append({
                "observationID": f"{mid}-{n}", **base,
                "observationType": label_kind(label_of(rs.labels, det)), "count": 1,
                "bboxX": f"{x:.4f}", "bboxY": f"{y:.4f}",
                "bboxWidth": f"{min(w, 1 - x) or w:.4f}", "bboxHeight": f"{min(h, 1 - y) or h:.4f}",
                "classificationProbability": f"{det.conf:.3f}",
                "observationTags": f"label:{label_of(rs.labels, det)}"
                + (f" | frame:{det.frame_number}" if det.frame_number is not None else ""),
            })
    dep_rows = []
    for dep, d in sorted(deployments.items()):
        lat, lon, comment = options.latitude, options.longitude, ""
        if lat is None or lon is None:
            if d["gps"]:
                lat, lon = d["gps"]
            else:
                lat, lon, comment = 0.0, 0.0, "location unknown: latitude/longitude are placeholders, set them before publishing"
        dep_rows.append({"deploymentID": dep, "locationName": dep, "latitude": lat, "longitude": lon,
                         "deploymentStart": _fmt(d["start"]), "deploymentEnd": _fmt(d["end"]),
                         "deploymentComments": comment})
    return {"deployments": dep_rows, "media": media, "observations": observations,
            "descriptor": _descriptor(options, dep_rows, media)}


def _descriptor(options: PackageOptions, deps: list[dict], media: list[dict]) -> dict:
    points = [[d["longitude"], d["latitude"]] for d in deps] or [[0.0, 0.0]]
    spatial = ({"type": "Point", "coordinates": points[0]} if len(points) == 1
               else {"type": "MultiPoint", "coordinates": points})
    times = sorted(m["timestamp"][:10] for m in media) or [_dt.date.today().isoformat()]
    resources = [{"name": t, "path": f"{t}.csv", "profile": "tabular-data-resource", "format": "csv",
                  "mediatype": "text/csv", "encoding": "utf-8", "schema": schema_url(t)} for t in TABLES]
    return {
        "resources": resources, "profile": PROFILE_URL,
        "name": "wildspace-detections", "id": str(uuid.uuid4()),
        "created": _fmt(_dt.datetime.now(_dt.timezone.utc)).replace("+00:00", "Z"),
        "title": options.title,
        "contributors": [{"title": options.contributor, "role": "contributor"}],
        "project": {"title": options.title, "samplingDesign": options.sampling_design,
                    "captureMethod": [options.capture_method], "individualAnimals": False,
                    "observationLevel": ["media"]},
        "spatial": spatial, "temporal": {"start": times[0], "end": times[-1]}, "taxonomic": [],
    }


def _fields(table: str) -> list[str]:
    schema = json.loads((SCHEMA_DIR / f"{table}-table-schema.json").read_text())
    return [f["name"] for f in schema["fields"]]


def write_package(rs, out_dir: str | Path, threshold: float,
                  options: PackageOptions = PackageOptions(), zip_path: str | Path | None = None) -> Path:
    """Write the package folder (and a zip of it when ``zip_path`` is given; returns that)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(rs, threshold, options)
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
    with tempfile.TemporaryDirectory(prefix="camtrap-validate-") as tmp:
        tmp = Path(tmp)
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
        with frictionless.system.use_context(http_session=offline_session()):
            report = frictionless.validate(str(tmp / "datapackage.json"))
        problems += [f"{e.type}: {e.message}" for e in report.errors]
        for task in report.tasks:
            problems += [f"{task.name}: {e.type}: {e.message}" for e in task.errors]
    return problems


def _is_safe_relative(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and not path.startswith(("~", "."))
