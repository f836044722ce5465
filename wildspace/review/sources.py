"""What a visitor can review: their batch runs in this app, their queued jobs (finished or
still running: what is done so far) and MegaDetector JSON files they upload with their images.

A batch run (and an upload) leaves ``review-source.json`` in its run folder: the owner's tag,
the MD JSON it wrote and where each image is. Runs expire with the run folder; corrections do
not (they are in the owner's :class:`~wildspace.review.store.ReviewStore`).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from wildspace.atomic import atomic_path
from wildspace.errors import WildspaceError
from wildspace.formats.exports import ResultSet, result_set_from_md
from wildspace.formats.megadetector import FormatError, read_results
from wildspace.review.videos import VideoFrames, is_video_results, video_source_results
from wildspace.runs.disk import owner_tag

MANIFEST = "review-source.json"
REVIEW_FLOOR = 0.005  # batch runs keep boxes down to this confidence, for review (MegaDetector's own)
_RUN = re.compile(r"^run-[A-Za-z0-9_]+$")
_TAB = re.compile(r"^[a-z]+$")


class SourceNotFound(WildspaceError, KeyError):
    """No such source among the owner's (foreign and missing answer the same)."""


@dataclass
class Source:
    """Results to review and how to find each image."""

    id: str
    title: str
    results: ResultSet
    image_path: Callable[[str], Path | None]
    running: bool = False
    total: int | None = None  # a running job: how many images it will have
    extra: dict = field(default_factory=dict)

    @property
    def species_names(self) -> list[str]:
        return sorted(set(self.results.classification_categories.values()))


def record_run(work_dir: Path, out, owner: str, title: str | None = None) -> Path | None:
    """Make a finished batch run (a :class:`~wildspace.runs.batch.RunOutput`) reviewable."""
    md = out.exports.get("md-json")
    if md is None:
        return None
    work_dir = Path(work_dir)
    stamp = _dt.datetime.now(_dt.timezone.utc)
    doc = {"owner": owner_tag(owner), "kind": "batch", "created": stamp.isoformat(timespec="seconds"),
           "title": title or f"Batch {stamp:%Y-%m-%d %H:%M} UTC: {len(out.results)} files, {out.info.name}",
           "md": str(Path(md).resolve().relative_to(work_dir.resolve())),
           "files": {name: str(Path(p).resolve()) for name, p in out.files.items()}}
    return _write_manifest(work_dir, doc)


def record_video_run(work_dir: Path, out, owner: str, title: str | None = None) -> Path | None:
    """Make a finished video run reviewable frame by frame (its sampled frames are the items;
    see :mod:`wildspace.review.videos`)."""
    md = out.exports.get("md-json")
    if md is None:
        return None
    work_dir = Path(work_dir)
    stamp = _dt.datetime.now(_dt.timezone.utc)
    frames = sum(len(r.frames_processed or ()) for r in out.results)
    doc = {"owner": owner_tag(owner), "kind": "video", "created": stamp.isoformat(timespec="seconds"),
           "title": title or (f"Video {stamp:%Y-%m-%d %H:%M} UTC: {len(out.results)} videos, {frames} frames, "
                              f"{out.info.name}"),
           "md": str(Path(md).resolve().relative_to(work_dir.resolve())),
           "files": {name: str(Path(p).resolve()) for name, p in out.files.items()}}
    return _write_manifest(work_dir, doc)


def _write_manifest(work_dir: Path, doc: dict) -> Path:
    with atomic_path(work_dir / MANIFEST) as tmp:
        Path(tmp).write_text(json.dumps(doc), encoding="utf-8")
    return work_dir / MANIFEST


def save_upload(md_file: str | Path, image_uploads: Sequence[str | Path], work_dir: Path, owner: str,
                limits) -> Path:
    """An uploaded MD JSON (any tool's) with its images (zips or loose files) as a source.

    Images are matched to the JSON's ``file`` names exactly, else by their unique last part(s).
    Raises ``FormatError`` for a JSON that is not MegaDetector's format."""
    from wildspace.media.archives import unpack_uploads

    work_dir = Path(work_dir)
    doc = read_results(md_file)
    (work_dir / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    unpacked = unpack_uploads(list(image_uploads or []), work_dir / "inputs", limits)
    files = match_images([im["file"] for im in doc["images"]], [(str(p), n) for p, n in unpacked.files])
    stamp = _dt.datetime.now(_dt.timezone.utc)
    return _write_manifest(work_dir, {
        "owner": owner_tag(owner), "kind": "upload", "created": stamp.isoformat(timespec="seconds"),
        "title": f"Upload {stamp:%Y-%m-%d %H:%M} UTC: {Path(md_file).name}, {len(doc['images'])} files "
                 f"({len(files)} with images)",
        "md": "results.json", "files": files})


def match_images(wanted: Sequence[str], have: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``{result file name: image path}`` for the uploaded images (``(path, name)`` pairs)."""
    by_name = {n.replace("\\", "/"): p for p, n in have}
    out = {}
    for w in wanted:
        key = w.replace("\\", "/")
        if key in by_name:
            out[w] = by_name[key]
            continue
        hits = [p for n, p in by_name.items() if n.endswith("/" + key) or key.endswith("/" + n)]
        if len(hits) == 1:
            out[w] = hits[0]
    return out


class Sources:
    """The owner's sources under the app's run folders (``roots``: tab -> folder) and queue."""

    def __init__(self, roots: dict[str, Path], queue=None, cache_dir: Path | None = None,
                 max_pixels: int = 50_000_000):
        self.roots = {k: Path(v) for k, v in roots.items()}
        self.queue = queue
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_pixels = max_pixels  # video frames decoded for review

    def list(self, owner: str) -> list[tuple[str, str]]:
        """``(title, id)`` of every source the owner has, newest first."""
        found = []
        tag = owner_tag(owner)
        for tab, root in self.roots.items():
            for manifest in root.glob(f"run-*/{MANIFEST}") if root.is_dir() else ():
                doc = _read_manifest(manifest)
                if doc and doc.get("owner") == tag:
                    found.append((doc.get("created", ""), doc.get("title", manifest.parent.name),
                                  f"run:{tab}/{manifest.parent.name}"))
        if self.queue is not None:
            for s in self.queue.store.list(owner):
                if s.kind == "detect-images":
                    found.append((s.created, f"Job {s.id[:8]}… ({s.state}, {s.done}/{s.total}, {s.model})",
                                  f"job:{s.id}"))
        return [(title, sid) for _, title, sid in sorted(found, reverse=True)]

    def load(self, owner: str, source_id: str) -> Source:
        """The source ``source_id`` of ``owner``; :class:`SourceNotFound` otherwise."""
        kind, _, rest = (source_id or "").partition(":")
        if kind == "run":
            return self._run(owner, source_id, rest)
        if kind == "job" and self.queue is not None:
            return self._job(owner, source_id, rest)
        raise SourceNotFound(source_id)

    def _run(self, owner: str, source_id: str, rest: str) -> Source:
        tab, _, run = rest.partition("/")
        if not _TAB.match(tab) or not _RUN.match(run) or tab not in self.roots:
            raise SourceNotFound(source_id)
        folder = self.roots[tab] / run
        doc = _read_manifest(folder / MANIFEST)
        if not doc or doc.get("owner") != owner_tag(owner):
            raise SourceNotFound(source_id)
        try:
            md = read_results(folder / doc["md"])
        except FormatError:
            raise SourceNotFound(source_id) from None
        files = {k: Path(v) for k, v in (doc.get("files") or {}).items()}
        rs = result_set_from_md(md)
        if doc.get("kind") == "video" or is_video_results(rs):  # reviewed frame by frame
            frames = VideoFrames(folder / "review-frames", {k: p for k, p in files.items() if _existing(p)}, rs,
                                 self.max_pixels)
            return Source(source_id, doc.get("title", run), video_source_results(rs), frames.path,
                          extra={"video_results": rs})
        return Source(source_id, doc.get("title", run), rs, lambda f: _existing(files.get(f)))

    def _job(self, owner: str, source_id: str, job_id: str) -> Source:
        from wildspace.jobs.store import JobNotFound

        store = self.queue.store
        try:
            spec = store.spec(job_id, owner)
            status = store.status(job_id, owner)
        except (JobNotFound, ValueError, OSError):
            raise SourceNotFound(source_id) from None
        if spec.kind != "detect-images":
            raise SourceNotFound(source_id)
        rs = result_set_from_md(store.document(job_id))
        inputs = {i["name"]: i["path"] for i in spec.inputs if i.get("path")}
        cache = (self.cache_dir or Path(self.roots.get("review", Path(".")))) / "job-inputs"

        def image_path(name: str) -> Path | None:
            if name not in inputs:
                return None
            try:
                return _existing(store.local_input(job_id, inputs[name], cache))
            except OSError:
                return None

        running = status.state in ("queued", "running")
        title = f"Job {job_id[:8]}… ({status.state}, {status.done}/{status.total})"
        return Source(source_id, title, rs, image_path, running=running, total=status.total)


def _existing(p: Path | None) -> Path | None:
    try:
        return p if p is not None and p.is_file() else None
    except OSError:
        return None


def _read_manifest(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
