"""The job store: what was asked, what is done, and the results, under a storage root.

Layout of one job (``<root>/jobs/<job id>/``)::

    job.json          the request: owner, kind, model, settings, inputs (never rewritten)
    detector.json     labels and metadata of the model that ran (written once by a worker)
    items/<i>.json    one file per finished input, written atomically as it is made
    cancel            present when cancellation was requested
    attempts/<k>.json tries at chunk k in a row without progress, and the last error (bounded
                      retries: the queue gives up on a chunk after a few, see jobs.queue)
    result.json       the assembled MegaDetector document, once every item is done

Results are appended item by item, then assembled, so a killed worker loses at most the item
in flight, and a restarted one skips what is already on disk: every input appears exactly
once. Job ids are 128-bit random hex tokens; a job is only visible to its owner.

The root is a local folder or any fsspec URL (``hf://datasets/org/repo/jobs``, ``s3://…``)
so an app and GPU workers on different machines can share jobs. Locally, files are written
with an atomic rename and items with an atomic create-if-absent (hard link); on object stores
each file is one object put (whole or not at all), and a chunk's lease keeps two workers off
the same item.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from wildspace.errors import UsageError, WildspaceError
from wildspace.formats.megadetector import FormatError, build_results, image_to_dict, parse_results
from wildspace.types import ImageResult

TRAIN_KINDS = ("train-classifier", "train-reid")  # run by wildspace.jobs.training, on the training queue
KINDS = ("detect-images", *TRAIN_KINDS)
STATES = ("queued", "running", "done", "cancelled", "failed")


def new_job_id() -> str:
    """128 random bits as hex: safe in paths and URLs, and never read as a command-line option
    (url-safe base64 can start with '-', which argparse takes for a flag)."""
    return secrets.token_hex(16)


class JobNotFound(WildspaceError, KeyError):
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
    options: dict = field(default_factory=dict)  # kind-specific settings (training: the config)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    id: str = field(default_factory=lambda: new_job_id())

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


def _synced_temp(target: Path, text: str) -> str:
    """A fsynced temporary file next to ``target`` (to rename or link into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return tmp


class _Files:
    """The few file operations the store needs, on a local folder or an fsspec filesystem."""

    def __init__(self, root: str | Path):
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.url = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = self.root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def read(self, path: str) -> str:
        return self.fs.cat_file(path).decode("utf-8")

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def names(self, folder: str, suffix: str = "") -> list[str]:
        try:
            entries = self.fs.ls(folder, detail=False)
        except (FileNotFoundError, OSError):
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.endswith(suffix))

    def write(self, path: str, text: str) -> None:
        if not self.local:
            self.fs.pipe_file(path, text.encode("utf-8"))
            return
        tmp = _synced_temp(Path(path), text)
        try:
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def create(self, path: str, text: str) -> bool:
        """Write only if absent; atomic locally (the chunk lease guards object stores)."""
        if not self.local:
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, text.encode("utf-8"))
            return True
        tmp = _synced_temp(Path(path), text)
        try:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)

    def put_file(self, local: Path, path: str) -> None:
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, path)
        else:
            self.fs.put_file(str(local), path)

    def get_file(self, path: str, local: Path) -> Path:
        if self.local:
            return Path(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        if not local.exists():
            self.fs.get_file(path, str(local))
        return local


class JobStore:
    """Jobs under a storage root shared by the app and the workers (a folder or fsspec URL)."""

    def __init__(self, root: str | Path):
        self.files = _Files(root)
        self.root = self.files.url
        if self.files.local:
            Path(self.files.path("jobs")).mkdir(parents=True, exist_ok=True)

    # -- paths --------------------------------------------------------------------------
    def _dir(self, job_id: str, *parts: str) -> str:
        if not job_id or "/" in job_id or job_id.startswith(".") or len(job_id) > 64:
            raise JobNotFound(job_id)
        return self.files.path("jobs", job_id, *parts)

    def put_input(self, job_id: str, local: Path, name: str) -> str:
        """Copy an uploaded file into the job's storage; returns its spec path
        (``stored:inputs/<name>``, resolved by :meth:`local_input`). The stored name is safe
        on any disk (:func:`wildspace.media.archives.disk_name`; a plain name is kept), and a
        name that cannot be stored there (a file and a folder of the same name) is stored under
        a hashed one: the job's ``name`` stays the original."""
        from wildspace.media.archives import disk_name, renamed_name

        rel = disk_name(name)
        target = self._dir(job_id, "inputs", *rel.split("/"))
        try:
            if self.files.exists(target):  # another input, on a case-insensitive disk
                raise FileExistsError(target)
            self.files.put_file(local, target)
        except OSError:  # a clash with another input's folder, or a name the disk refuses
            rel = renamed_name(name)
            self.files.put_file(local, self._dir(job_id, "inputs", *rel.split("/")))
        return f"stored:inputs/{rel}"

    def local_input(self, job_id: str, path: str, cache: Path) -> Path:
        """A local file for a spec input path (downloaded from remote storage if needed)."""
        if not path.startswith("stored:"):
            return Path(path)
        rel = path[len("stored:"):]
        return self.files.get_file(self._dir(job_id, rel), cache / job_id / rel)

    # -- creating and reading -----------------------------------------------------------
    @staticmethod
    def new_id() -> str:
        return new_job_id()

    def create(self, spec: JobSpec) -> JobSpec:
        if spec.kind not in KINDS:
            raise UsageError(f"unknown job kind '{spec.kind}'; choose from {', '.join(KINDS)}")
        if not spec.inputs:
            raise UsageError("a job needs at least one input")
        self.files.write(self._dir(spec.id, "job.json"), json.dumps(asdict(spec), indent=1))
        return spec

    def spec(self, job_id: str, owner: str | None = None) -> JobSpec:
        """The job's request; ``owner=None`` is for workers (no ownership check)."""
        try:
            data = json.loads(self.files.read(self._dir(job_id, "job.json")))
        except (OSError, ValueError):
            raise JobNotFound(job_id) from None
        if owner is not None and data.get("owner") != owner:
            raise JobNotFound(job_id)
        return JobSpec(**data)

    def _job_ids(self) -> list[str]:
        return self.files.names(self.files.path("jobs"))

    def list(self, owner: str) -> list[JobStatus]:
        out = []
        for job_id in self._job_ids():
            try:
                out.append(self.status(job_id, owner))
            except JobNotFound:
                continue
        return sorted(out, key=lambda s: s.created, reverse=True)

    # -- items --------------------------------------------------------------------------
    def _item(self, job_id: str, index: int) -> str:
        return self._dir(job_id, "items", f"{index:07d}.json")

    def has_item(self, job_id: str, index: int) -> bool:
        return self.files.exists(self._item(job_id, index))

    def put_item(self, job_id: str, index: int, result: ImageResult, worker: str) -> bool:
        """Record one finished input. Returns False (and writes nothing) if it was already
        recorded: the first result of an item is the one that counts."""
        record = {"index": index, "worker": worker, "image": image_to_dict(result)}
        return self.files.create(self._item(job_id, index), json.dumps(record))

    def items(self, job_id: str) -> Iterator[dict]:
        folder = self._dir(job_id, "items")
        for name in self.files.names(folder, ".json"):
            if name.startswith("."):
                continue
            try:
                yield json.loads(self.files.read(f"{folder}/{name}"))
            except (OSError, ValueError):
                continue  # writes are whole-or-nothing; skip anything unreadable

    def done_indexes(self, job_id: str) -> set[int]:
        return {int(n[:-5]) for n in self.files.names(self._dir(job_id, "items"), ".json")
                if n[:-5].isdigit()}

    # -- attempts: bounded retries ------------------------------------------------------
    def _attempts(self, job_id: str, chunk: int) -> str:
        return self._dir(job_id, "attempts", f"{chunk:05d}.json")

    def attempt(self, job_id: str, chunk: int) -> dict:
        """The try record of a chunk: ``count`` (tries in a row without progress), ``done``
        (its items recorded when the last try began), ``errors`` and the last ``error``."""
        path = self._attempts(job_id, chunk)
        try:
            rec = json.loads(self.files.read(path)) if self.files.exists(path) else {}
        except (OSError, ValueError):
            rec = {}
        return rec if isinstance(rec, dict) else {}

    def start_attempt(self, job_id: str, chunk: int, done: int) -> int:
        """Count one more try at a chunk, ``done`` of whose items are recorded; returns how many
        tries in a row made no progress, this one included (a try that finds more items done
        than the one before starts the count again). Only the chunk's lease holder calls it."""
        rec = self.attempt(job_id, chunk)
        if done > int(rec.get("done", -1)):
            rec = {"count": 0, "errors": 0}
        rec.update(count=int(rec.get("count", 0)) + 1, done=done)
        self.files.write(self._attempts(job_id, chunk), json.dumps(rec))
        return rec["count"]

    def note_attempt_error(self, job_id: str, chunk: int, error: str) -> int:
        """Record why a try at a chunk failed; returns the errors in a row without progress."""
        rec = self.attempt(job_id, chunk)
        rec.update(errors=int(rec.get("errors", 0)) + 1, error=str(error)[:500])
        self.files.write(self._attempts(job_id, chunk), json.dumps(rec))
        return rec["errors"]

    # -- detector, cancel, result -------------------------------------------------------
    def put_detector(self, job_id: str, labels: tuple[str, ...], detector: str, metadata: dict) -> None:
        self.files.create(self._dir(job_id, "detector.json"),
                          json.dumps({"labels": list(labels), "detector": detector, "metadata": metadata}))

    def detector(self, job_id: str) -> dict | None:
        p = self._dir(job_id, "detector.json")
        return json.loads(self.files.read(p)) if self.files.exists(p) else None

    def cancel(self, job_id: str, owner: str) -> None:
        self.spec(job_id, owner)
        self.files.write(self._dir(job_id, "cancel"), _dt.datetime.now(_dt.timezone.utc).isoformat())

    def cancelled(self, job_id: str) -> bool:
        return self.files.exists(self._dir(job_id, "cancel"))

    def has_result(self, job_id: str) -> bool:
        return self.files.exists(self._dir(job_id, "result.json"))

    def assemble(self, job_id: str) -> bool:
        """Write ``result.json`` when every input has a result (idempotent)."""
        spec = self.spec(job_id)
        if self.has_result(job_id):
            return True
        if spec.kind != "detect-images":  # training jobs write their own result
            return False
        if len(self.done_indexes(job_id)) < spec.total:
            return False
        self.files.write(self._dir(job_id, "result.json"), json.dumps(self.document(job_id), indent=1))
        return True

    def document(self, job_id: str) -> dict:
        """The MegaDetector document of what is done so far (all of it once done)."""
        if self.has_result(job_id):
            return json.loads(self.files.read(self._dir(job_id, "result.json")))
        spec = self.spec(job_id)
        det = self.detector(job_id) or {"labels": [], "detector": spec.model or "unknown", "metadata": {}}
        return build_results(self.results(job_id), det["labels"], det["detector"], det["metadata"])

    def results(self, job_id: str) -> builtins.list[ImageResult]:  # ``list`` is a method here
        images = [rec["image"] for rec in self.items(job_id)]
        det = self.detector(job_id) or {"labels": []}
        cats = {str(i + 1): n for i, n in enumerate(det["labels"])} or {"1": "animal"}
        try:
            return parse_results({"info": {"format_version": "1.5"}, "detection_categories": cats,
                                  "images": images})
        except FormatError:
            return [ImageResult(im["file"], None, failure="result unreadable") for im in images]

    # -- status -------------------------------------------------------------------------
    # -- training jobs: progress and result documents -----------------------------------
    def put_progress(self, job_id: str, progress: dict) -> None:
        """Replace the job's ``progress.json`` (training: epochs done, last metrics)."""
        self.files.write(self._dir(job_id, "progress.json"), json.dumps(progress))

    def progress(self, job_id: str) -> dict:
        p = self._dir(job_id, "progress.json")
        return json.loads(self.files.read(p)) if self.files.exists(p) else {}

    def put_result(self, job_id: str, result: dict) -> None:
        """Write a non-detection job's ``result.json`` (once it is finished or has failed)."""
        self.files.write(self._dir(job_id, "result.json"), json.dumps(result, indent=1))

    def result(self, job_id: str) -> dict | None:
        p = self._dir(job_id, "result.json")
        return json.loads(self.files.read(p)) if self.files.exists(p) else None

    def status(self, job_id: str, owner: str | None = None) -> JobStatus:
        spec = self.spec(job_id, owner)
        if spec.kind != "detect-images":
            return self._train_status(spec)
        records = list(self.items(job_id))
        failures = sum(1 for r in records if r["image"].get("failure"))
        done = len(records)
        if self.has_result(job_id):
            state = "done"
        elif self.cancelled(job_id):
            state = "cancelled"
        elif done:
            state = "running"
        else:
            state = "queued"
        return JobStatus(spec.id, spec.owner, spec.kind, state, done, spec.total, failures,
                         spec.created, spec.model or (Path(spec.weights).name if spec.weights else None))

    def _train_status(self, spec: JobSpec) -> JobStatus:
        progress = self.progress(spec.id)
        result = self.result(spec.id)
        done, total = int(progress.get("epoch", 0)), int(spec.options.get("config", {}).get("epochs", 1))
        if result is not None:
            state = "failed" if result.get("error") else "done"
            done = int(result.get("epochs_done", done))
        elif self.cancelled(spec.id):
            state = "cancelled"
        else:
            state = "running" if progress else "queued"
        return JobStatus(spec.id, spec.owner, spec.kind, state, done, total, int(state == "failed"),
                         spec.created, spec.options.get("config", {}).get("name"))

    def unfinished(self) -> Iterator[JobSpec]:
        """Jobs that still have work (not done, not cancelled) — for recovery."""
        for job_id in self._job_ids():
            try:
                spec = self.spec(job_id)
            except JobNotFound:
                continue
            if not self.has_result(job_id) and not self.cancelled(job_id):
                yield spec


def status_dict(s: JobStatus) -> dict[str, Any]:
    return asdict(s)
