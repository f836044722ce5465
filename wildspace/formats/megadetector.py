"""The MegaDetector batch output format (Timelapse, EcoAssist/AddaxAI and others read it).

Writer: ``format_version`` "1.5", ``detection_categories`` keyed ``"1", "2", …``
(``class_id + 1``), conf rounded to 3 decimals and ``bbox`` (normalised
``[x_min, y_min, width, height]``) to 4, images sorted by ``file``, failed files as
``failure`` + ``detections: null``.

Reader/validator: applies the rules of MegaDetector's own validator to files from any tool
and raises :class:`FormatError` naming the first problem (path-like location + reason).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, NoReturn

from wildspace.atomic import atomic_path
from wildspace.errors import WildspaceError
from wildspace.types import Detection, DetectorInfo, ImageResult

FORMAT_VERSION = "1.5"
CONF_DIGITS = 3
COORD_DIGITS = 4
MD_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mpeg", ".mpg", ".mov", ".mkv", ".flv")  # MegaDetector's list
# the containers wildspace accepts (media.archives.VIDEO_EXTENSIONS): their entries always
# carry frame_rate and frames_processed, a failed one frame_rate -1.0 and [] as MegaDetector writes
WRITTEN_AS_VIDEO = VIDEO_EXTENSIONS + (".asf", ".wmv", ".m4v")


class FormatError(WildspaceError, ValueError):
    """A results file does not follow the format; the message says where and why."""


def detector_metadata(info: DetectorInfo, output_threshold: float) -> dict[str, Any]:
    """``info.detector_metadata`` for a run: thresholds tools use, plus what produced it."""
    return {"megadetector_version": info.version or info.name, "model_name": info.name,
            "typical_detection_threshold": info.typical_threshold,
            "conservative_detection_threshold": info.conservative_threshold,
            "image_size": info.input_size, "output_threshold": output_threshold}


def categories_for(labels: Iterable[str]) -> dict[str, str]:
    """``{"1": labels[0], "2": labels[1], …}`` — the MegaDetector category convention."""
    return {str(i + 1): str(name) for i, name in enumerate(labels)}


def detection_to_dict(d: Detection) -> dict[str, Any]:
    out = {"category": d.category, "conf": round(float(d.conf), CONF_DIGITS),
           "bbox": [round(float(v), COORD_DIGITS) for v in d.bbox_xywh_norm]}
    if d.frame_number is not None:
        out["frame_number"] = int(d.frame_number)
    if d.classifications:
        out["classifications"] = [[str(c), round(float(p), CONF_DIGITS)] for c, p in d.classifications]
    return out


def image_to_dict(r: ImageResult) -> dict[str, Any]:
    out: dict[str, Any] = {"file": r.file}
    video = r.file.lower().endswith(WRITTEN_AS_VIDEO)
    if r.failure is not None and video:
        out["frame_rate"] = -1.0  # MegaDetector's value for a video it could not read
        out["frames_processed"] = []
    else:
        if r.frame_rate is not None or video:
            out["frame_rate"] = round(float(r.frame_rate or 0.0), 3)
        if r.frames_processed is not None or video:
            out["frames_processed"] = [int(f) for f in r.frames_processed or ()]
    if r.failure is not None:
        out.update(failure=r.failure, detections=None)
        return out
    dets = sorted(r.detections or (), key=lambda d: (d.frame_number or 0, -d.conf))
    out["detections"] = [detection_to_dict(d) for d in dets]
    return out


def build_results(results: Iterable[ImageResult], labels: Iterable[str], detector: str,
                  metadata: dict[str, Any] | None = None,
                  completed: _dt.datetime | None = None,
                  classification_categories: dict[str, str] | None = None,
                  classifier: str | None = None,
                  classifier_metadata: dict[str, Any] | None = None,
                  classification_descriptions: dict[str, str] | None = None) -> dict[str, Any]:
    """Assemble a MegaDetector batch-format document.

    Args:
        results: one entry per input file (failures included).
        labels: the detector's class names in output order.
        detector: the weights file name (tools pick thresholds from it, e.g. ``md_v5a.0.0.pt``).
        metadata: ``detector_metadata`` (``megadetector_version``,
            ``typical_detection_threshold``, ``conservative_detection_threshold`` …).
        classification_categories: ``{"0": "zebra", …}`` when detections carry
            ``classifications`` (keys are the classifier's 0-based label indexes as strings).
        classifier: the classifier's name, written as ``info.classifier``.
        classifier_metadata: e.g. ``{"typical_classification_threshold": 0.5}``.
        classification_descriptions: taxonomy strings per classification category
            (``classification_category_descriptions``).
    """
    completed = completed or _dt.datetime.now()
    info: dict[str, Any] = {"format_version": FORMAT_VERSION, "detector": detector,
            "detection_completion_time": completed.strftime("%Y-%m-%d %H:%M:%S")}
    if metadata:
        info["detector_metadata"] = dict(metadata)
    if classifier:
        info["classifier"] = classifier
        info["classification_completion_time"] = info["detection_completion_time"]
    if classifier_metadata:
        info["classifier_metadata"] = dict(classifier_metadata)
    images = sorted((image_to_dict(r) for r in results), key=lambda d: d["file"])
    doc: dict[str, Any] = {"info": info, "detection_categories": categories_for(labels)}
    if classification_categories:
        doc["classification_categories"] = {str(k): str(v) for k, v in classification_categories.items()}
        if classification_descriptions:
            doc["classification_category_descriptions"] = {
                str(k): str(v) for k, v in classification_descriptions.items()
                if str(k) in doc["classification_categories"]}
    doc["images"] = images
    return doc


def parse_time(text: Any) -> _dt.datetime | None:
    """A ``*_completion_time`` value (``2025-03-12 17:45:10``) as a datetime, or None."""
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return _dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def write_results(doc: dict[str, Any], path: str | Path) -> Path:
    """Validate and write atomically (a crash never leaves a half-written file), readable by
    everyone like any file a user writes (0644)."""
    validate(doc)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
        os.chmod(tmp, 0o644)
    return Path(path)


class ResultsSpool:
    """The images of a MegaDetector document kept in a temporary file while a run goes on,
    then written out sorted by file, byte for byte what :func:`build_results` +
    :func:`write_results` write: memory stays flat however many images and boxes a run has
    (only the file names and offsets stay in memory; 10,000 images at MegaDetector's 0.005
    floor are ~680,000 boxes). Each image is checked as it is added, the header when written.
    """

    def __init__(self, labels: Iterable[str], classification_categories: dict[str, str] | None = None):
        import tempfile

        self._det_cats = categories_for(labels)
        self._cls_cats = {str(k): str(v) for k, v in (classification_categories or {}).items()}
        self._version = float(FORMAT_VERSION)
        self._file = tempfile.TemporaryFile()
        self._index: list[tuple[str, int, int]] = []
        self.failed = 0
        self.detections = 0

    def __len__(self) -> int:
        return len(self._index)

    def add(self, r: ImageResult) -> None:
        d = image_to_dict(r)
        _check_image(f"images[{len(self._index)}]", d, self._det_cats, self._cls_cats, self._version)
        # as json.dump(doc, indent=1) writes an entry of the top-level "images" list
        data = "\n".join("  " + line for line in json.dumps(d, indent=1).splitlines()).encode("utf-8")
        self._index.append((d["file"], self._file.tell(), len(data)))
        self._file.write(data)
        self.failed += bool(r.failed)
        self.detections += len(r.detections or ())

    def write(self, header: dict[str, Any], path: str | Path) -> Path:
        """Write ``header`` (a :func:`build_results` document, its ``images`` ignored) with
        the spooled images, atomically and 0644 like :func:`write_results`."""
        header = {k: v for k, v in header.items() if k != "images"}
        validate({**header, "images": []})
        head = json.dumps({**header, "images": []}, indent=1)
        assert head.endswith('"images": []\n}')
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            if not self._index:
                f.write(head.encode("utf-8") + b"\n")
            else:
                f.write(head[:-len("[]\n}")].encode("utf-8") + b"[\n")
                for i, (_, offset, size) in enumerate(sorted(self._index)):
                    self._file.seek(offset)
                    f.write((b",\n" if i else b"") + self._file.read(size))
                f.write(b"\n ]\n}\n")
            os.chmod(tmp, 0o644)
        return Path(path)

    def close(self) -> None:
        self._file.close()


def read_results(source: str | Path | dict) -> dict[str, Any]:
    """Load and validate a MegaDetector results file (any tool's, format 1.0 onwards)."""
    if isinstance(source, dict):
        doc = source
    else:
        try:
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"cannot read {source}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise FormatError(f"{source} is not valid JSON: {exc}") from None
    validate(doc)
    return doc


def parse_results(doc: dict[str, Any]) -> list[ImageResult]:
    """Validated document → :class:`ImageResult` list (category "k" → class_id k-1)."""
    validate(doc)
    out = []
    for im in doc["images"]:
        if im.get("failure") is not None:
            out.append(ImageResult(im["file"], None, failure=im["failure"],
                                   frame_rate=im.get("frame_rate")))
            continue
        dets = tuple(Detection(int(d["category"]) - 1, float(d["conf"]),
                               _xywh(d["bbox"]), d.get("frame_number"),
                               tuple((str(c), float(p)) for c, p in d.get("classifications") or ()))
                     for d in im["detections"])
        frames = im.get("frames_processed")
        out.append(ImageResult(im["file"], dets, frame_rate=im.get("frame_rate"),
                               frames_processed=tuple(frames) if frames is not None else None))
    return out


def _xywh(values: list) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in values)  # validate() checked: 4 numbers
    return x, y, w, h


def _fail(where: str, why: str) -> NoReturn:
    raise FormatError(f"{where}: {why}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_categories(doc: dict, key: str) -> dict:
    cats = doc.get(key)
    if not isinstance(cats, dict):
        _fail(key, "must be an object mapping category ids to names")
    for k, v in cats.items():
        if not isinstance(k, str) or not k.strip().lstrip("-").isdigit() or int(k) < 0:
            _fail(f"{key}[{k!r}]", "keys must be non-negative integers written as strings")
        if not isinstance(v, str) or not v.strip():
            _fail(f"{key}[{k!r}]", "names must be non-empty strings")
    return cats


def validate(doc: Any) -> None:
    """Raise :class:`FormatError` unless ``doc`` is a valid MegaDetector results document."""
    if not isinstance(doc, dict):
        _fail("document", "must be a JSON object")
    info = doc.get("info")
    if not isinstance(info, dict) or "format_version" not in info:
        _fail("info", "must be an object with a format_version")
    try:
        version = float(info["format_version"])
    except (TypeError, ValueError):
        _fail("info.format_version", f"{info['format_version']!r} is not a version number")
    if version >= 1.6 and not isinstance(info["format_version"], str):
        _fail("info.format_version", "must be a string from version 1.6")
    det_cats = _check_categories(doc, "detection_categories")
    cls_cats = _check_categories(doc, "classification_categories") \
        if "classification_categories" in doc else {}
    images = doc.get("images")
    if not isinstance(images, list):
        _fail("images", "must be a list")
    for i, im in enumerate(images):
        _check_image(f"images[{i}]", im, det_cats, cls_cats, version)


def _check_image(where: str, im: Any, det_cats: dict, cls_cats: dict, version: float) -> None:
    if not isinstance(im, dict):
        _fail(where, "must be an object")
    if not isinstance(im.get("file"), str) or not im["file"]:
        _fail(f"{where}.file", "must be a non-empty string")
    where = f"{where} ({im['file']})"
    failure = im.get("failure")
    if failure is not None:
        if not isinstance(failure, str):
            _fail(f"{where}.failure", "must be a string")
        if im.get("detections") is not None:
            _fail(f"{where}.detections", "must be null when failure is set")
        return
    dets = im.get("detections")
    if not isinstance(dets, list):
        _fail(f"{where}.detections", "must be a list (empty when nothing was found)")
    is_video = im["file"].lower().endswith(VIDEO_EXTENSIONS)
    if is_video and version >= 1.4 and "frame_rate" in im and not _is_number(im["frame_rate"]):
        _fail(f"{where}.frame_rate", "must be a number")
    frames = im.get("frames_processed")
    if frames is not None and not (isinstance(frames, list)
                                   and all(isinstance(f, int) and not isinstance(f, bool) for f in frames)):
        _fail(f"{where}.frames_processed", "must be a list of frame numbers")
    for j, d in enumerate(dets):
        w = f"{where}.detections[{j}]"
        if not isinstance(d, dict):
            _fail(w, "must be an object")
        if not isinstance(d.get("category"), str) or d["category"] not in det_cats:
            _fail(f"{w}.category", f"{d.get('category')!r} is not in detection_categories")
        if not _is_number(d.get("conf")) or not -1e-6 <= d["conf"] <= 1 + 1e-6:
            _fail(f"{w}.conf", f"{d.get('conf')!r} must be a number in [0, 1]")
        bbox = d.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            _fail(f"{w}.bbox", "must be [x_min, y_min, width, height] (4 numbers)")
        if is_video and "frame_number" in d and not (isinstance(d["frame_number"], int) and d["frame_number"] >= 0):
            _fail(f"{w}.frame_number", "must be a non-negative integer")
        for k, c in enumerate(d.get("classifications") or []):
            if not (isinstance(c, (list, tuple)) and len(c) == 2 and isinstance(c[0], str)
                    and c[0] in cls_cats and _is_number(c[1])):
                _fail(f"{w}.classifications[{k}]", "must be [category id in classification_categories, conf]")
            if not -1e-6 <= c[1] <= 1 + 1e-6:
                _fail(f"{w}.classifications[{k}]", f"conf {c[1]!r} must be in [0, 1]")
