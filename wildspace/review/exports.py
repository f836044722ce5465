"""Exports with the corrections applied.

- **MegaDetector JSON** (for videos reviewed frame by frame the video JSON, see
  :func:`wildspace.review.videos.corrected_video_document`): an image a reviewer touched lists
  the boxes they kept (accepted, redrawn or added ones with ``conf`` 1.0; undecided ones as the
  model gave them), species as ``classifications`` (conf 1.0 when a person set them), and, in
  fields MegaDetector's validator tolerates, ``review`` (status, reviewer, time), ``original_detections`` (what the
  model gave, unchanged) and per box ``review`` (accepted, redrawn, added) and
  ``individual_id``. Untouched images are as the model left them.
- **Camtrap DP**: observations of reviewed boxes and images are ``classificationMethod:
  human`` with the reviewer in ``classifiedBy``, their species in ``scientificName`` and the
  individual in ``individualID``; the rest stay ``machine``.
- **Training sets** the Train tab reads as they are: a zip of class folders (crops of the
  accepted boxes per species), a zip of crops with ``identities.csv`` (re-ID), and YOLO and
  COCO boxes (detector fine-tuning).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath

from PIL import Image

from wildspace.atomic import atomic_path
from wildspace.errors import UsageError
from wildspace.formats import camtrap_dp
from wildspace.formats.csv_export import safe_row
from wildspace.formats.megadetector import CONF_DIGITS, build_results, detection_to_dict, image_to_dict, write_results
from wildspace.media.images import ImageReadError, load_image
from wildspace.review.state import ACCEPTED, PENDING, Box, ImageState
from wildspace.review.videos import corrected_video_document
from wildspace.review.view import OpenSource, label
from wildspace.types import Detection, ImageResult

CROP_MARGIN = 0.1


def species_categories(opened: OpenSource) -> dict[str, str]:
    """The source's classification categories plus every species a reviewer typed (new ids)."""
    cats = {str(k): v for k, v in opened.source.results.classification_categories.items()}
    names = set(cats.values())
    nxt = max((int(k) for k in cats), default=-1) + 1
    for s in opened.states.states.values():
        for b in s.boxes:
            if b.species and b.species not in names:
                cats[str(nxt)] = b.species
                names.add(b.species)
                nxt += 1
    return cats


def kept(state: ImageState) -> list[Box]:
    """The boxes an export keeps: accepted ones and, where nobody decided, the model's."""
    return [b for b in state.boxes if b.status in (ACCEPTED, PENDING)]


def _box_dict(b: Box, ids: dict[str, str]) -> dict:
    if b.status == PENDING and b.original is not None:
        d = detection_to_dict(replace(b.original, class_id=b.class_id))
        if b.species_by == "human" and b.species:
            d["classifications"] = [[ids[b.species], 1.0]]
    else:
        d = {"category": str(b.class_id + 1), "conf": 1.0, "bbox": [round(float(v), 4) for v in b.bbox]}
        if b.original is not None and b.original.frame_number is not None:
            d["frame_number"] = int(b.original.frame_number)
        if b.species:
            conf = 1.0 if b.species_by == "human" or b.original is None else \
                round(max(c for _, c in b.original.classifications), CONF_DIGITS)
            d["classifications"] = [[ids[b.species], float(conf)]]
        d["review"] = "added" if b.added else ("redrawn" if b.redrawn else "accepted")
    if b.individual:
        d["individual_id"] = b.individual
    return d


def corrected_document(opened: OpenSource) -> dict:
    """The source's MegaDetector document with the corrections applied (module docstring)."""
    rs = opened.source.results
    cats = species_categories(opened)
    ids = {v: k for k, v in cats.items()}
    doc = build_results([], rs.labels, rs.detector, rs.metadata, classification_categories=cats or None,
                        classifier=rs.classifier, classifier_metadata=dict(rs.classifier_metadata) or None)
    doc["info"]["review"] = {"tool": "wildspace review", "reviewed_images": sum(
        1 for s in opened.states.states.values() if s.reviewed)}
    if is_video_source(opened):
        return corrected_video_document(opened, lambda s: [_box_dict(b, ids) for b in kept(s)], doc)
    images = []
    for r in rs.results:
        s = opened.states.states[r.file]
        if r.failed or not s.touched:
            images.append(image_to_dict(r))
            continue
        im = image_to_dict(ImageResult(r.file, (), width=r.width, height=r.height, frame_rate=r.frame_rate,
                                       frames_processed=r.frames_processed))
        im["detections"] = [_box_dict(b, ids) for b in kept(s)] if s.status not in ("empty", "misfire") else []
        im["original_detections"] = [detection_to_dict(d) for d in r.detections or ()]
        im["review"] = {"status": s.status, "reviewer": s.reviewer, "reviewed_at": s.at}
        images.append(im)
    doc["images"] = sorted(images, key=lambda d: d["file"])
    return doc


def is_video_source(opened: OpenSource) -> bool:
    """A video run reviewed frame by frame (:mod:`wildspace.review.videos`)."""
    return "video_results" in opened.source.extra


def write_md(opened: OpenSource, path: Path) -> Path:
    """Validated, atomic: see :func:`corrected_document`."""
    return write_results(corrected_document(opened), path)


# -- Camtrap DP ---------------------------------------------------------------------------
def _corrected_results(opened: OpenSource) -> tuple[list[ImageResult], dict[str, list[tuple[Detection, Box]]]]:
    """Results with reviewed boxes at conf 1.0, and per file the (detection, box) pairs."""
    results, pairs = [], {}
    for r in opened.source.results.results:
        s = opened.states.states[r.file]
        if r.failed or not s.touched:
            results.append(r)
            continue
        boxes = kept(s) if s.status not in ("empty", "misfire") else []
        dets = [Detection(b.class_id, b.conf if b.status == PENDING else 1.0, b.bbox,
                          b.original.frame_number if b.original is not None else None) for b in boxes]
        pairs[r.file] = list(zip(dets, boxes, strict=True))
        results.append(ImageResult(r.file, tuple(dets), width=r.width, height=r.height))
    return results, pairs


def camtrap_tables(opened: OpenSource, threshold: float, reviewer: str,
                   options: camtrap_dp.PackageOptions | None = None) -> dict:
    """Camtrap DP tables (as :func:`wildspace.formats.camtrap_dp.build_tables` makes them) with
    the reviewed observations made ``human`` (media without a capture time: their file time,
    flagged as not a capture time; see ``PackageOptions.missing_times``)."""
    rs = opened.source.results
    results, pairs = _corrected_results(opened)
    options = options or camtrap_dp.PackageOptions(missing_times="file-time")
    tables = camtrap_dp.build_tables(replace(rs, results=results, files=_files(opened)), threshold, options)
    by_media = {m["mediaID"]: m["filePath"] for m in tables["media"]}
    for obs in tables["observations"]:
        file = by_media.get(obs["mediaID"], "")
        s = opened.states.states.get(file)
        if s is None or file not in pairs:
            continue
        ordered = sorted((p for p in pairs[file] if p[0].conf >= threshold), key=lambda p: -p[0].conf)
        n = int(obs["observationID"].rsplit("-", 1)[1])
        box = ordered[n][1] if obs["observationType"] != "blank" and n < len(ordered) else None
        if box is not None and box.status == PENDING:
            continue  # nobody decided this one: the model's observation
        if box is None and not s.reviewed:
            continue
        obs.update(classificationMethod="human", classifiedBy=reviewer, classificationTimestamp=_ts(s.at),
                   classificationProbability="")
        if box is not None:
            if box.species:
                obs["scientificName"] = box.species
            if box.individual:
                obs["individualID"] = box.individual
            obs["observationTags"] = f"{obs.get('observationTags', '')} | review:" + (
                "added" if box.added else "redrawn" if box.redrawn else "accepted")
        elif s.status == "misfire":
            obs["observationComments"] = "misfire (marked by a reviewer)"
    tables["observations"] = _with_events(tables["observations"])
    if any(o.get("individualID") for o in tables["observations"]):
        tables["descriptor"]["project"]["individualAnimals"] = True
    return tables


def _with_events(observations: list[dict]) -> list[dict]:
    """Media-level rows as corrected, and the event-level rows made again from them (the
    package's own :func:`~wildspace.formats.camtrap_dp.event_observations`, same events)."""
    import datetime as _dt
    from types import SimpleNamespace

    media = [o for o in observations if o.get("observationLevel") != "event"]
    events: dict[str, SimpleNamespace] = {}
    for o in observations:
        if o.get("observationLevel") == "event" and o["eventID"] not in events:
            events[o["eventID"]] = SimpleNamespace(
                event_id=o["eventID"], deployment_id=o["deploymentID"],
                start=_dt.datetime.fromisoformat(o["eventStart"]), end=_dt.datetime.fromisoformat(o["eventEnd"]))
    if not events:
        return media
    return media + camtrap_dp.event_observations(media, list(events.values()))


def _ts(at: str | None) -> str:
    return (at or "").replace("+00:00", "Z") if at else ""


def _files(opened: OpenSource) -> dict[str, Path]:
    out = {}
    for r in opened.source.results.results:
        p = opened.source.image_path(r.file)
        if p is not None:
            out[r.file] = p
    return out


def write_camtrap(opened: OpenSource, out_dir: Path, threshold: float, reviewer: str,
                  zip_path: Path | None = None, options: camtrap_dp.PackageOptions | None = None) -> Path:
    """The package folder (and its zip when ``zip_path`` is given; returns that). ``options``:
    deployments, UTC offset, event gap (as :func:`camtrap_tables` takes them)."""
    tables = camtrap_tables(opened, threshold, reviewer, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for t in camtrap_dp.TABLES:
        schema = json.loads((camtrap_dp.SCHEMA_DIR / f"{t}-table-schema.json").read_text(encoding="utf-8"))
        with atomic_path(out / f"{t}.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=[x["name"] for x in schema["fields"]], extrasaction="raise")
            w.writeheader()
            w.writerows(safe_row(row) for row in tables[t])
    with atomic_path(out / "datapackage.json") as tmp:
        Path(tmp).write_text(json.dumps(tables["descriptor"], indent=2), encoding="utf-8")
    if zip_path is None:
        return out
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("datapackage.json", *(f"{t}.csv" for t in camtrap_dp.TABLES)):
            z.write(out / name, name)
    return Path(zip_path)


# -- training sets ------------------------------------------------------------------------
def safe_folder(name: str) -> str:
    """A class name as a folder name (no separators, no leading dot)."""
    s = re.sub(r"[^\w\- ]+", "_", name.strip()).strip(" ._")
    return s or "unnamed"


def _reviewed_boxes(opened: OpenSource, want) -> list[tuple[str, Box, str]]:
    """``(file, box, class)`` of accepted boxes of reviewed images for which ``want(box)`` names a class."""
    out = []
    for file in sorted(opened.states.states):
        s = opened.states.states[file]
        if s.status != "reviewed":
            continue
        for b in s.boxes:
            if b.status == ACCEPTED and want(b):
                out.append((file, b, want(b)))
    return out


def box_crop(image: Image.Image, bbox, margin: float = CROP_MARGIN) -> Image.Image | None:
    """The box ``bbox`` (normalised x, y, w, h) with ``margin`` of its size around it, or
    ``None`` when it is under 2 px."""
    w, h = image.size
    x, y, bw, bh = bbox
    mx, my = bw * margin, bh * margin
    left, top = max(0, int((x - mx) * w)), max(0, int((y - my) * h))
    right, bottom = min(w, int(round((x + bw + mx) * w))), min(h, int(round((y + bh + my) * h)))
    if right - left < 2 or bottom - top < 2:
        return None
    return image.crop((left, top, right, bottom))


def _crops(opened: OpenSource, items, max_pixels: int):
    """``(file, box, class, crop JPEG bytes)`` for each item whose image can be read."""
    cache: dict[str, Image.Image | None] = {}
    for file, box, cls in items:
        if file not in cache:
            cache.clear()
            path = opened.source.image_path(file)
            try:
                cache[file] = Image.fromarray(load_image(path, max_pixels=max_pixels)) if path else None
            except (ImageReadError, OSError):
                cache[file] = None
        image = cache[file]
        crop = box_crop(image, box.bbox) if image is not None else None
        if crop is None:
            continue
        buf = io.BytesIO()
        crop.convert("RGB").save(buf, format="JPEG", quality=92)
        yield file, box, cls, buf.getvalue()


def member_stem(file: str) -> str:
    """A result's name as a zip member's stem: its extension (if it has one) dropped, separators
    and odd characters as ``_`` (a video frame ``clip.mp4#frame000005``: ``clip_mp4_frame000005``)."""
    p = PurePosixPath(file)
    base = str(p.with_suffix("")) if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", p.suffix) else file
    return re.sub(r"[^\w\-]+", "_", base)


def _member(file: str, box: Box) -> str:
    stem = member_stem(file)[-80:]
    return f"{stem}_{box.key}.jpg"


def write_class_folders(opened: OpenSource, path: Path, max_pixels: int) -> tuple[Path, dict[str, int]]:
    """A zip of ``<species>/<crop>.jpg`` from the accepted boxes of reviewed images (what the
    Train tab takes). Returns the path and the crops per class; at least two classes needed."""
    items = _reviewed_boxes(opened, lambda b: b.species)
    counts: dict[str, int] = {}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for file, box, cls, data in _crops(opened, items, max_pixels):
            z.writestr(f"{safe_folder(cls)}/{_member(file, box)}", data)
            counts[safe_folder(cls)] = counts.get(safe_folder(cls), 0) + 1
        if len(counts) < 2:
            raise UsageError("a classifier needs reviewed boxes of at least two species; found "
                             f"{len(counts)} ({', '.join(counts) or 'none'}). Accept images with species set.")
    return Path(path), counts


def write_identities(opened: OpenSource, path: Path, max_pixels: int) -> tuple[Path, dict[str, int]]:
    """A zip of crops with ``identities.csv`` (``file``, ``identity``) for re-ID training."""
    items = _reviewed_boxes(opened, lambda b: b.individual)
    counts: dict[str, int] = {}
    rows = []
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for file, box, ident, data in _crops(opened, items, max_pixels):
            member = f"crops/{_member(file, box)}"
            z.writestr(member, data)
            rows.append({"file": member, "identity": ident})
            counts[ident] = counts.get(ident, 0) + 1
        if len(counts) < 2:
            raise UsageError("re-ID training needs reviewed boxes of at least two individuals; found "
                             f"{len(counts)}. Set individual IDs on accepted boxes.")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["file", "identity"])
        w.writeheader()
        w.writerows(safe_row(r) for r in rows)
        z.writestr("identities.csv", buf.getvalue())
    return Path(path), counts


def _training_images(opened: OpenSource):
    """``(file, image path, member stem, boxes)`` of every reviewed image with its image: the
    accepted boxes of a ``reviewed`` one, none for ``empty`` and ``misfire`` (negatives)."""
    for file in sorted(opened.states.states):
        s = opened.states.states[file]
        src = opened.source.image_path(file)
        if not s.reviewed or src is None:
            continue
        stem = member_stem(file)
        boxes = [b for b in s.boxes if b.status == ACCEPTED] if s.status == "reviewed" else []
        yield file, Path(src), stem, boxes


def write_yolo(opened: OpenSource, path: Path) -> tuple[Path, int]:
    """A zip in YOLO's layout (``images/``, ``labels/`` with ``class cx cy w h`` lines,
    ``data.yaml``) of every reviewed image; empty and misfire images have empty label files."""
    labels = opened.source.results.labels
    n = 0
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for _, src, stem, boxes in _training_images(opened):
            z.write(src, f"images/{stem}{src.suffix.lower()}")
            lines = [f"{b.class_id} {b.bbox[0] + b.bbox[2] / 2:.6f} {b.bbox[1] + b.bbox[3] / 2:.6f} "
                     f"{b.bbox[2]:.6f} {b.bbox[3]:.6f}" for b in boxes]
            z.writestr(f"labels/{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            n += 1
        names = "\n".join(f"  {i}: {json.dumps(label(labels, i))}" for i in range(len(labels)))
        z.writestr("data.yaml", f"path: .\ntrain: images\nval: images\nnames:\n{names}\n")
    return Path(path), n


COCO_JSON = "annotations/instances_train.json"


def coco_instances(opened: OpenSource) -> dict:
    """A COCO *instances* document (what detector fine-tuning tools read: integer ids, boxes in
    absolute pixels ``[x, y, width, height]``, ``area``, ``iscrowd``) of every reviewed image,
    ``file_name`` relative to ``images/``. Category ids are MegaDetector's (``class_id + 1``).
    Images are sized as displayed (EXIF rotation applied); one whose size cannot be read is left out."""
    from wildspace.formats.categories import label_kind
    from wildspace.media.exif import image_size

    labels = opened.source.results.labels
    classes = max([len(labels) - 1, *(b.class_id for s in opened.states.states.values() for b in s.boxes)])
    categories = [{"id": i + 1, "name": label(labels, i), "supercategory": label_kind(label(labels, i))}
                  for i in range(classes + 1)]
    images: list[dict] = []
    annotations: list[dict] = []
    for file, src, stem, boxes in _training_images(opened):
        size = image_size(src)
        if size is None:
            continue
        W, H = size
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"{stem}{src.suffix.lower()}", "width": W, "height": H,
                       "original_file": file})
        for b in boxes:
            x, y, w, h = (round(b.bbox[0] * W, 2), round(b.bbox[1] * H, 2), round(b.bbox[2] * W, 2),
                          round(b.bbox[3] * H, 2))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": b.class_id + 1,
                                "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0})
    return {"info": {"description": "wildspace review: reviewed boxes for detector fine-tuning", "version": "1.0"},
            "licenses": [], "images": images, "annotations": annotations, "categories": categories}


def write_coco_boxes(opened: OpenSource, path: Path) -> tuple[Path, int]:
    """A zip of ``images/`` and ``annotations/instances_train.json`` (:func:`coco_instances`);
    returns the path and the number of images."""
    doc = coco_instances(opened)
    sources = {f"{stem}{src.suffix.lower()}": src for _, src, stem, _ in _training_images(opened)}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for im in doc["images"]:
            z.write(sources[im["file_name"]], f"images/{im['file_name']}")
        z.writestr(COCO_JSON, json.dumps(doc, indent=1))
    return Path(path), len(doc["images"])
