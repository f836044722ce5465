"""The job store: what was asked, what is done, and the results, under a storage root.

Layout of one job (``<root>/jobs/<job id>/``)::

    job.json          the request: owner, kind, model, settings, inputs (never rewritten)
    detector.json     labels and metadata of the model that ran (written once by a worker)
    items/<i>.json    one file per finished input, written atomically as it is made
    cancel            present when cancellation was requested
    result.json       the assembled MegaDetector document, once every item is done

Results are appended item by item, then assembled, so a killed worker loses at most the item
in flight, and a restarted one skips what is already on disk: every input appears exactly
once. Job ids are 192-bit random tokens; a job is only visible to its owner.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from wildspace.formats.megadetector import FormatError, build_results, image_to_dict, parse_results
from wildspace.types import ImageResult

KINDS = ("detect-images",)
STATES = ("queued", "running", "done", "cancelled")


class JobNotFound(KeyError):
    """No such job for this owner (deliberately the same answer for someone else's job)."""


@dataclass(frozen=True)
class JobSpec:
    owner: str
    kind: str
    inputs: list[dict]  # [{"name": reported name, "path": path readable by workers}]
    model: str | None = None
    weights: str | None = None
    threshold: float = 0.005
    image_size: int | None = None
    chunk_size: int = 16
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    id: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def total(self) -> int:
        return len(self.inputs)

    def chunks(self) -> list[range]:
        n = max(1, self.chunk_size)
        return [range(i, min(i + n, self.total)) for i in range(0, self.total, n)]


@dataclass(frozen=True)
class JobStatus:
    id: str
    owner: str
    kind: str
    state: str
    done: int
    total: int
    failures: int
    created: str
    model: str | None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_create(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist yet (atomic, even between processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


class JobStore:
    """Jobs under a local storage root (shared by the app and the workers)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)

    # -- paths --------------------------------------------------------------------------
    def _dir(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith(".") or len(job_id) > 64:
            raise JobNotFound(job_id)
        return self.root / "jobs" / job_id

    def inputs_dir(self, job_id: str) -> Path:
        return self._dir(job_id) / "inputs"

    # -- creating and reading -----------------------------------------------------------
    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(24)

    def create(self, spec: JobSpec) -> JobSpec:
        if spec.kind not in KINDS:
            raise ValueError(f"unknown job kind '{spec.kind}'; choose from {', '.join(KINDS)}")
        if not spec.inputs:
            raise ValueError("a job needs at least one input")
        d = self._dir(spec.id)
        (d / "items").mkdir(parents=True, exist_ok=True)
        _atomic_write(d / "job.json", json.dumps(asdict(spec), indent=1))
        return spec

    def spec(self, job_id: str, owner: str | None = None) -> JobSpec:
        """The job's request; ``owner=None`` is for workers (no ownership check)."""
        p = self._dir(job_id) / "job.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise JobNotFound(job_id) from None
        if owner is not None and data.get("owner") != owner:
            raise JobNotFound(job_id)
        return JobSpec(**data)

    def list(self, owner: str) -> list[JobStatus]:
        out = []
        for d in sorted((self.root / "jobs").iterdir()):
            try:
                spec = self.spec(d.name, owner)
            except JobNotFound:
                continue
            out.append(self.status(spec.id, owner))
        return sorted(out, key=lambda s: s.created, reverse=True)

    # -- items --------------------------------------------------------------------------
    def item_path(self, job_id: str, index: int) -> Path:
        return self._dir(job_id) / "items" / f"{index:07d}.json"

    def has_item(self, job_id: str, index: int) -> bool:
        return self.item_path(job_id, index).is_file()

    def put_item(self, job_id: str, index: int, result: ImageResult, worker: str) -> bool:
        """Record one finished input. Returns False (and writes nothing) if it was already
        recorded: the first result of an item is the one that counts."""
        record = {"index": index, "worker": worker, "image": image_to_dict(result)}
        return _atomic_create(self.item_path(job_id, index), json.dumps(record))

    def items(self, job_id: str) -> Iterator[dict]:
        for p in sorted((self._dir(job_id) / "items").glob("*.json")):
            try:
                yield json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # an interrupted write never leaves a partial file (atomic rename)

    def done_indexes(self, job_id: str) -> set[int]:
        return {int(p.stem) for p in (self._dir(job_id) / "items").glob("*.json")}

    # -- detector, cancel, result -------------------------------------------------------
    def put_detector(self, job_id: str, labels: tuple[str, ...], detector: str, metadata: dict) -> None:
        p = self._dir(job_id) / "detector.json"
        if not p.exists():
            _atomic_write(p, json.dumps({"labels": list(labels), "detector": detector, "metadata": metadata}))

    def detector(self, job_id: str) -> dict | None:
        p = self._dir(job_id) / "detector.json"
        return json.loads(p.read_text()) if p.exists() else None

    def cancel(self, job_id: str, owner: str) -> None:
        self.spec(job_id, owner)
        _atomic_write(self._dir(job_id) / "cancel", _dt.datetime.now(_dt.timezone.utc).isoformat())

    def cancelled(self, job_id: str) -> bool:
        return (self._dir(job_id) / "cancel").exists()

    def result_path(self, job_id: str) -> Path:
        return self._dir(job_id) / "result.json"

    def assemble(self, job_id: str) -> Path | None:
        """Write ``result.json`` when every input has a result (idempotent); return it."""
        spec = self.spec(job_id)
        if self.result_path(job_id).exists():
            return self.result_path(job_id)
        done = self.done_indexes(job_id)
        if len(done) < spec.total:
            return None
        return self._write_result(job_id, spec)

    def _write_result(self, job_id: str, spec: JobSpec) -> Path:
        det = self.detector(job_id) or {"labels": [], "detector": spec.model or "unknown", "metadata": {}}
        results = self.results(job_id)
        doc = build_results(results, det["labels"], det["detector"], det["metadata"])
        _atomic_write(self.result_path(job_id), json.dumps(doc, indent=1))
        return self.result_path(job_id)

    def results(self, job_id: str) -> list[ImageResult]:
        images = [rec["image"] for rec in self.items(job_id)]
        det = self.detector(job_id) or {"labels": []}
        cats = {str(i + 1): n for i, n in enumerate(det["labels"])} or {"1": "animal"}
        try:
            return parse_results({"info": {"format_version": "1.5"}, "detection_categories": cats,
                                  "images": images})
        except FormatError:
            return [ImageResult(im["file"], None, failure="result unreadable") for im in images]

    def partial_result(self, job_id: str, owner: str) -> Path:
        """A MegaDetector document of what is done so far (for cancelled or running jobs)."""
        spec = self.spec(job_id, owner)
        if self.result_path(job_id).exists():
            return self.result_path(job_id)
        p = self._dir(job_id) / "partial-result.json"
        det = self.detector(job_id) or {"labels": [], "detector": spec.model or "unknown", "metadata": {}}
        doc = build_results(self.results(job_id), det["labels"], det["detector"], det["metadata"])
        _atomic_write(p, json.dumps(doc, indent=1))
        return p

    # -- status -------------------------------------------------------------------------
    def status(self, job_id: str, owner: str | None = None) -> JobStatus:
        spec = self.spec(job_id, owner)
        records = list(self.items(job_id))
        failures = sum(1 for r in records if r["image"].get("failure"))
        done = len(records)
        if self.result_path(job_id).exists():
            state = "done"
        elif self.cancelled(job_id):
            state = "cancelled"
        elif done:
            state = "running"
        else:
            state = "queued"
        return JobStatus(spec.id, spec.owner, spec.kind, state, done, spec.total, failures,
                         spec.created, spec.model or (Path(spec.weights).name if spec.weights else None))

    def unfinished(self) -> Iterator[JobSpec]:
        """Jobs that still have work (not done, not cancelled) — for recovery."""
        for d in sorted((self.root / "jobs").iterdir()):
            try:
                spec = self.spec(d.name)
            except JobNotFound:
                continue
            if not self.result_path(spec.id).exists() and not self.cancelled(spec.id):
                yield spec


def status_dict(s: JobStatus) -> dict[str, Any]:
    return asdict(s)
