"""Corrections, stored durably per owner: one SQLite file each under ``<home>/review/``.

Every save is one transaction (WAL journal, ``synchronous=FULL``): after a crash, even a
SIGKILL in the middle of a save, the file opens and holds every save that returned, and
nothing of one that did not. Rows are never updated: a correction is appended with who made
it, when, and the model's original detection it changes, so the history is the data.

A row's ``target`` is ``image`` (the image's status), ``d<k>`` (the k-th detection the model
gave the image) or ``n<hex>`` (a box a reviewer added).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from wildspace.errors import UsageError

ACTIONS = ("status", "accept", "reject", "bbox", "add", "category", "species", "individual")
IMAGE_STATUSES = ("unreviewed", "reviewed", "empty", "misfire")

SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    target TEXT NOT NULL,
    action TEXT NOT NULL,
    value TEXT NOT NULL,
    original TEXT,
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_source ON corrections (source, id);
"""


@dataclass(frozen=True)
class Change:
    """One correction to save: ``action`` on ``target`` of ``file`` with a JSON-able ``value``;
    ``original`` is the model's detection it changes (as MD JSON), when there is one."""

    file: str
    target: str
    action: str
    value: Any = None
    original: dict | None = None

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise UsageError(f"unknown correction '{self.action}'; one of {', '.join(ACTIONS)}")
        if self.action == "status" and self.value not in IMAGE_STATUSES:
            raise UsageError(f"image status must be one of {', '.join(IMAGE_STATUSES)}, got {self.value!r}")
        if self.target != "image" and not (self.target[:1] in ("d", "n") and len(self.target) > 1):
            raise UsageError(f"bad correction target {self.target!r}")


@dataclass(frozen=True)
class Correction:
    """A stored correction (a :class:`Change` with its id, source, reviewer and time)."""

    id: int
    source: str
    file: str
    target: str
    action: str
    value: Any
    original: dict | None
    reviewer: str
    at: str


def owner_file(root: Path, owner: str) -> Path:
    """The owner's database (a hash of the owner: no names on disk)."""
    return Path(root) / f"{hashlib.sha256(owner.encode()).hexdigest()[:24]}.sqlite"


class ReviewStore:
    """The corrections of one owner (see the module docstring). Thread-safe."""

    def __init__(self, root: str | Path, owner: str):
        if not owner:
            raise UsageError("a review store needs an owner")
        self.path = owner_file(Path(root), owner)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, source: str, changes: Iterable[Change], reviewer: str) -> list[int]:
        """Store ``changes`` in one transaction; returns their ids (all or none are stored)."""
        changes = list(changes)
        at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        rows = [(source, c.file, c.target, c.action, json.dumps(c.value),
                 json.dumps(c.original) if c.original is not None else None, reviewer, at) for c in changes]
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                ids = []
                for row in rows:
                    cur.execute("INSERT INTO corrections (source, file, target, action, value, original, reviewer, at)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                    ids.append(int(cur.lastrowid or 0))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return ids

    def corrections(self, source: str, after: int = 0) -> list[Correction]:
        """The source's corrections in the order they were made (ids above ``after``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, source, file, target, action, value, original, reviewer, at FROM corrections"
                " WHERE source = ? AND id > ? ORDER BY id", (source, after)).fetchall()
        return [Correction(i, s, f, t, a, json.loads(v), json.loads(o) if o else None, r, at)
                for i, s, f, t, a, v, o, r, at in rows]

    def version(self, source: str) -> int:
        """The id of the source's latest correction (0 when none): changes when anything is saved."""
        with self._lock:
            row = self._db.execute("SELECT MAX(id) FROM corrections WHERE source = ?", (source,)).fetchone()
        return int(row[0] or 0)

    def sources(self) -> dict[str, int]:
        """``{source: number of corrections}``."""
        with self._lock:
            return dict(self._db.execute("SELECT source, COUNT(*) FROM corrections GROUP BY source").fetchall())


class ReviewStores:
    """One open :class:`ReviewStore` per owner under ``root`` (opened on first use)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._open: dict[str, ReviewStore] = {}
        self._lock = threading.Lock()

    def of(self, owner: str) -> ReviewStore:
        with self._lock:
            store = self._open.get(owner)
            if store is None:
                store = self._open[owner] = ReviewStore(self.root, owner)
            return store

    def close(self) -> None:
        with self._lock:
            for store in self._open.values():
                store.close()
            self._open.clear()
