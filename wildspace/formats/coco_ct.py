"""COCO Camera Traps (LILA's format): write from results, read back with integrity checks.

Category ids are MegaDetector's (``class_id + 1``) and id 0 is ``empty``; an image with no
detection gets one ``empty`` annotation without a box. Boxes are absolute pixels
``[x, y, width, height]`` when the image size is known, else ``bbox_relative``. Detections
keep their confidence as ``score``. Failed files are images with ``corrupt: true``.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, NoReturn

from wildspace.atomic import atomic_path
from wildspace.formats.megadetector import FormatError
from wildspace.media.exif import capture_time, image_size
from wildspace.types import Detection, ImageResult

EMPTY_ID = 0


def to_coco(results: Iterable[ImageResult], labels: tuple[str, ...],
            files: Mapping[str, Path] | None = None, threshold: float = 0.0,
            description: str = "wildspace detections",
            times: Mapping[str, _dt.datetime] | None = None,
            locations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A COCO Camera Traps document. ``times`` (capture times, see
    :mod:`wildspace.formats.timestamps`) become ``datetime``; without them EXIF is read.
    ``locations`` (deployment per file) become ``location``; without them the file's folder
    (:func:`wildspace.formats.events.folder_deployment`)."""
    from wildspace.formats.events import folder_deployment

    files = files or {}
    locations = locations or {}
    cats = [{"id": EMPTY_ID, "name": "empty"}] + [{"id": i + 1, "name": n} for i, n in enumerate(labels)]
    images, annotations = [], []
    for r in sorted(results, key=lambda r: r.file):
        im: dict[str, Any] = {"id": r.file, "file_name": r.file,
                              "location": locations.get(r.file) or folder_deployment(r.file)}
        size = (r.width, r.height) if r.width and r.height else (
            _size_on_disk(files[r.file]) if r.file in files else None)
        if size:
            im["width"], im["height"] = size
        t = times.get(r.file) if times is not None else (
            capture_time(files[r.file]) if r.file in files else None)
        if t is not None:
            im["datetime"] = t.strftime("%Y-%m-%d %H:%M:%S")
        if r.frame_rate is not None and r.frame_rate > 0:
            im["frame_rate"] = round(float(r.frame_rate), 3)
        if r.failed:
            im.update(corrupt=True, failure=r.failure)
            images.append(im)
            continue
        images.append(im)
        dets = [d for d in r.detections or () if d.conf >= threshold]
        if not dets:
            annotations.append({"id": f"{r.file}#empty", "image_id": r.file, "category_id": EMPTY_ID})
        for n, d in enumerate(sorted(dets, key=lambda d: -d.conf)):
            ann: dict[str, Any] = {"id": f"{r.file}#{n}", "image_id": r.file,
                                   "category_id": d.class_id + 1, "score": round(d.conf, 3)}
            x, y, w, h = d.bbox_xywh_norm
            if size:
                W, H = size
                ann["bbox"] = [round(x * W, 2), round(y * H, 2), round(w * W, 2), round(h * H, 2)]
            else:  # no size known: COCO's pixel box cannot be written
                ann["bbox_relative"] = [round(v, 6) for v in (x, y, w, h)]
            if d.frame_number is not None:
                ann["frame_number"] = d.frame_number
            annotations.append(ann)
    info = {"version": "1.0", "description": description,
            "date_created": _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
    return {"info": info, "images": images, "categories": cats, "annotations": annotations}


def _size_on_disk(path: Path) -> tuple[int, int] | None:
    from wildspace.media.archives import VIDEO_EXTENSIONS

    if Path(path).suffix.lower() in VIDEO_EXTENSIONS:
        from wildspace.media.video import video_size

        return video_size(path)
    return image_size(path)


def write_coco(doc: dict, path: str | Path) -> Path:
    validate_coco(doc)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    return path


def read_coco(source: str | Path | dict) -> dict:
    if isinstance(source, dict):
        doc = source
    else:
        try:
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"cannot read COCO file {source}: {exc}") from None
    validate_coco(doc)
    return doc


def _fail(where: str, why: str) -> NoReturn:
    raise FormatError(f"{where}: {why}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_key(v: Any) -> bool:
    return isinstance(v, (str, int)) and not isinstance(v, bool)


def validate_coco(doc: Any) -> None:
    """The integrity rules of COCO Camera Traps (unique ids, known references, sane boxes)."""
    if not isinstance(doc, dict):
        _fail("document", "must be a JSON object")
    for key in ("images", "categories", "annotations"):
        if not isinstance(doc.get(key), list):
            _fail(key, "must be a list")
    cat_ids = set()
    for i, c in enumerate(doc["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool) \
                or c["id"] < 0 or not isinstance(c.get("name"), str):
            _fail(f"categories[{i}]", "needs an integer id >= 0 and a string name")
        if c["id"] in cat_ids:
            _fail(f"categories[{i}]", f"duplicate id {c['id']}")
        cat_ids.add(c["id"])
    image_ids = set()
    for i, im in enumerate(doc["images"]):
        if (not isinstance(im, dict) or not isinstance(im.get("id"), (str, int))
                or not isinstance(im.get("file_name"), str)):
            _fail(f"images[{i}]", "needs an id and a file_name")
        if im["id"] in image_ids:
            _fail(f"images[{i}]", f"duplicate id {im['id']!r}")
        if ("width" in im) != ("height" in im):
            _fail(f"images[{i}]", "width and height go together")
        if any(im.get(k) is not None and not _is_number(im[k]) for k in ("width", "height")):
            _fail(f"images[{i}]", f"width and height must be numbers, got {im.get('width')!r}, {im.get('height')!r}")
        image_ids.add(im["id"])
    ann_ids = set()
    for i, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or not _is_key(a.get("id")):
            _fail(f"annotations[{i}]", "needs a string or integer id")
        if a["id"] in ann_ids:
            _fail(f"annotations[{i}]", f"duplicate id {a['id']!r}")
        ann_ids.add(a["id"])
        if not _is_key(a.get("image_id")) or a["image_id"] not in image_ids:
            _fail(f"annotations[{i}].image_id", f"{a.get('image_id')!r} is not an image id")
        if not _is_key(a.get("category_id")) or a["category_id"] not in cat_ids:
            _fail(f"annotations[{i}].category_id", f"{a.get('category_id')!r} is not a category id")
        if "score" in a and not _is_number(a["score"]):
            _fail(f"annotations[{i}].score", f"must be a number, got {a['score']!r}")
        if a.get("frame_number") is not None and not (isinstance(a["frame_number"], int)
                                                      and not isinstance(a["frame_number"], bool)):
            _fail(f"annotations[{i}].frame_number", f"must be an integer, got {a['frame_number']!r}")
        for key in ("bbox", "bbox_relative"):
            if key in a:
                b = a[key]
                if not (isinstance(b, list) and len(b) == 4
                        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
                        and b[2] >= 0 and b[3] >= 0):
                    _fail(f"annotations[{i}].{key}", "must be [x, y, width, height] with width, height >= 0")


def coco_to_results(doc: dict) -> tuple[list[ImageResult], tuple[str, ...]]:
    """Back to results and labels (category id k -> class_id k-1; ``empty`` dropped)."""
    validate_coco(doc)
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    n = max((k for k in cats if k != EMPTY_ID), default=0)
    labels = tuple(cats.get(i + 1, str(i + 1)) for i in range(n))
    by_image: dict[Any, list[Detection]] = {im["id"]: [] for im in doc["images"]}
    sizes = {im["id"]: (im.get("width"), im.get("height")) for im in doc["images"]}
    for a in doc["annotations"]:
        if a["category_id"] == EMPTY_ID or not ("bbox" in a or "bbox_relative" in a):
            continue
        if "bbox_relative" in a:
            rx, ry, rw, rh = (float(v) for v in a["bbox_relative"])  # validated: 4 numbers
            box: tuple[float, float, float, float] = (rx, ry, rw, rh)
        else:
            W, H = sizes[a["image_id"]]
            if not W or not H:
                raise FormatError(f"annotation {a['id']!r}: pixel bbox on an image without width/height")
            x, y, w, h = a["bbox"]
            box = (x / W, y / H, w / W, h / H)
        by_image[a["image_id"]].append(Detection(a["category_id"] - 1, float(a.get("score", 1.0)), box,
                                                 a.get("frame_number")))
    results = []
    for im in doc["images"]:
        w, h = sizes[im["id"]]
        if im.get("corrupt"):
            results.append(ImageResult(im["file_name"], None, failure=im.get("failure") or "corrupt",
                                       width=w, height=h))
        else:
            results.append(ImageResult(im["file_name"], tuple(by_image[im["id"]]), width=w, height=h))
    return results, labels
