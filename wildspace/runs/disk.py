"""The app's disk: one root, a size budget, per-request and per-visitor quotas, expiry.

Everything a request writes lives under the work root (``WILDSPACE_WORK_DIR``): Gradio's upload
cache (``gradio/``), and one ``run-*`` folder per request under a folder per tab (inputs
unpacked from zips, thumbnails, exports). :class:`DiskBudget` admits a request only if what it
will write (estimated from the upload before anything is unpacked: loose files, zip members'
declared sizes, and the sorted-images zip that copies them) fits the request quota, the
visitor's quota (their kept runs) and the whole budget; :meth:`DiskBudget.sweep` deletes runs,
Gradio cache entries and finished queued jobs older than ``WILDSPACE_RESULT_HOURS`` (at start,
then periodically), so a restart cleans what is stale.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable

from wildspace.settings.guards import Guards
from wildspace.settings.limits import LimitError

log = logging.getLogger("wildspace.runs.disk")
OWNER_FILE = ".owner"
MB = 2**20
FINISHED = ("done", "cancelled", "failed")


class DiskFull(LimitError):
    """A request would pass a disk quota or the app's budget (the message says which)."""


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed; vanishing files skipped)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def upload_need(paths: Iterable[str | Path], extensions: frozenset[str]) -> int:
    """Bytes a batch of ``paths`` will write: zip members with wanted ``extensions`` unpacked
    (declared sizes; extraction stops at them anyway), twice (the sorted-images zip stores a
    copy), plus the exports' share. Loose files are used in place: only the sorted copy."""
    need = 0
    for raw in paths:
        p = Path(raw)
        try:
            size = p.stat().st_size
        except OSError:
            continue
        if p.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(p) as z:
                    need += 2 * sum(i.file_size for i in z.infolist()
                                    if PurePosixPath(i.filename).suffix.lower() in extensions)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, UnicodeDecodeError):
                need += size
        else:
            need += size
    return need


def owner_tag(owner: str) -> str:
    """What a run folder records of its owner (a hash: no names on disk)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:24]


class DiskBudget:
    """Quotas and expiry for one work root (see the module docstring)."""

    def __init__(self, root: Path, guards: Guards, caches: Iterable[Path] = (), store=None):
        self.root = Path(root)
        self.guards = guards
        self.caches = [Path(p) for p in caches]  # folders whose entries expire by age (Gradio's cache)
        self.extra_roots = [c for c in self.caches if not _inside(c, [self.root])]
        self.store = store  # a JobStore whose finished jobs expire too
        self._lock = threading.Lock()
        self._usage: tuple[float, int] | None = None

    # -- run folders ---------------------------------------------------------------------
    def new_run(self, folder: Path, owner: str) -> Path:
        """A fresh ``run-*`` folder under ``folder`` (below the root), tagged with its owner."""
        folder.mkdir(parents=True, exist_ok=True)
        run = Path(tempfile.mkdtemp(dir=folder, prefix="run-"))
        os.chmod(run, 0o755)
        (run / OWNER_FILE).write_text(owner_tag(owner), encoding="utf-8")
        return run

    def _runs(self) -> Iterable[Path]:
        """Run folders (``<root>/<tab>/run-*``)."""
        if self.root.is_dir():
            yield from (p for p in self.root.glob("*/run-*") if p.is_dir())

    def _entries(self) -> Iterable[Path]:
        """Everything that expires by age: ``<root>/<tab>/<entry>`` (runs, single-image results,
        Gradio's ``<root>/gradio/<hash>``) and the entries of caches outside the root."""
        if self.root.is_dir():
            for tab in self.root.iterdir():
                if tab.is_dir() and not tab.is_symlink():
                    yield from list(tab.iterdir())
        for cache in self.extra_roots:
            if cache.is_dir():
                yield from list(cache.iterdir())

    # -- admission -----------------------------------------------------------------------
    def usage(self, max_age: float = 5.0) -> int:
        """Bytes under the roots (cached for ``max_age`` seconds: walking is not free)."""
        with self._lock:
            now = time.monotonic()
            if self._usage is None or now - self._usage[0] > max_age:
                total = sum(tree_size(p) for p in [self.root, *self.extra_roots] if p.is_dir())
                self._usage = (now, total)
            return self._usage[1]

    def owner_usage(self, owner: str) -> int:
        tag = owner_tag(owner)
        total = 0
        for run in self._runs():
            try:
                if (run / OWNER_FILE).read_text(encoding="utf-8").strip() == tag:
                    total += tree_size(run)
            except OSError:
                continue
        return total

    def admit(self, owner: str, need: int) -> None:
        """Raise :class:`DiskFull` unless ``need`` more bytes fit every quota."""
        g = self.guards
        if need > g.request_disk_bytes:
            raise DiskFull(f"this upload would need about {need / MB:.0f} MB of disk once unpacked; one request "
                           f"may use {g.request_disk_bytes / MB:.0f} MB here (WILDSPACE_REQUEST_DISK_MB). "
                           "Split it into smaller uploads.")
        mine = self.owner_usage(owner)
        if mine + need > g.visitor_disk_bytes:
            raise DiskFull(f"your kept results use {mine / MB:.0f} MB; with this upload they would pass "
                           f"{g.visitor_disk_bytes / MB:.0f} MB (WILDSPACE_VISITOR_DISK_MB). Results are deleted "
                           f"{g.result_hours:g} hours after they were made.")
        if self.usage() + need > g.disk_budget_bytes:
            self.sweep()
            if self.usage(max_age=0) + need > g.disk_budget_bytes:
                raise DiskFull("the server's disk for results is full right now; try again later "
                               "(WILDSPACE_DISK_BUDGET_MB).")
        with self._lock:
            if self._usage is not None:  # count this request until the next walk
                self._usage = (self._usage[0], self._usage[1] + need)

    def discard(self, paths: Iterable[str | Path]) -> int:
        """Delete uploaded files of a refused request at once (only files under the root or a
        cache: never a path a CLI user named); returns how many."""
        n = 0
        for raw in paths:
            p = Path(raw)
            if p.is_file() and _inside(p, [self.root, *self.caches]):
                p.unlink(missing_ok=True)
                n += 1
        return n

    # -- expiry --------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Delete runs, Gradio cache entries and finished jobs older than the expiry; returns
        how many were deleted."""
        now = time.time() if now is None else now
        cutoff = now - self.guards.result_seconds
        n = 0
        for entry in list(self._entries()):
            if _created(entry) < cutoff:
                _remove(entry)
                n += 1
        n += self._expire_jobs(cutoff)
        with self._lock:
            self._usage = None
        return n

    def _expire_jobs(self, cutoff: float) -> int:
        store = self.store
        if store is None or not getattr(store.files, "local", False):
            return 0
        n = 0
        jobs = Path(store.files.path("jobs"))
        for job_dir in list(jobs.iterdir()) if jobs.is_dir() else []:
            try:
                state = store.status(job_dir.name).state
            except Exception:  # a damaged job folder: judged by age alone
                state = "done"
            if state in FINISHED and _mtime_tree(job_dir) < cutoff:
                shutil.rmtree(job_dir, ignore_errors=True)
                n += 1
        return n

    def start_sweeper(self, stop: threading.Event, every: float | None = None) -> threading.Thread:
        """Sweep now and then every ``every`` seconds (default: a tenth of the expiry, 1 min to 1 h)."""
        period = every or min(3600.0, max(60.0, self.guards.result_seconds / 10))

        def loop() -> None:
            while True:
                try:
                    self.sweep()
                except Exception:  # keep sweeping; one bad folder must not stop the cleanup
                    log.exception("disk sweep failed")
                if stop.wait(period):
                    return

        t = threading.Thread(target=loop, name="wildspace-disk-sweeper", daemon=True)
        t.start()
        return t


def _inside(path: Path, roots: list[Path]) -> bool:
    path = path.resolve()
    return any(path == r.resolve() or r.resolve() in path.parents for r in roots)


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except OSError:
        return 0.0


def _created(entry: Path) -> float:
    marker = entry / OWNER_FILE
    return _mtime(marker) if marker.is_file() else _mtime(entry)


def _mtime_tree(p: Path) -> float:
    latest = _mtime(p)
    for root, _dirs, files in os.walk(p):
        for name in files:
            latest = max(latest, _mtime(Path(root) / name))
    return latest


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
