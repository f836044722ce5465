"""Leases: which worker is working on which chunk of a job, expiring on their own.

A worker takes a chunk's lease before working on it and renews it after every item. A lease
that is not renewed (the worker was killed) expires after ``ttl`` seconds; the chunk can
then be taken again. Redis leases are ``SET NX EX`` keys (atomic across machines); the
embedded queue keeps them in a SQLite table next to its queue file (atomic across processes).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Protocol


class Leases(Protocol):
    def acquire(self, key: str, owner: str, ttl: float) -> bool: ...
    def renew(self, key: str, owner: str, ttl: float) -> bool: ...
    def release(self, key: str, owner: str) -> None: ...
    def holder(self, key: str) -> str | None: ...


class SqliteLeases:
    def __init__(self, path: str | Path):
        self.path = str(path)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT, expires REAL)")

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def acquire(self, key: str, owner: str, ttl: float) -> bool:
        now = time.time()
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM leases WHERE key = ? AND expires < ?", (key, now))
            db.execute("INSERT OR IGNORE INTO leases VALUES (?, ?, ?)", (key, owner, now + ttl))
            row = db.execute("SELECT owner FROM leases WHERE key = ?", (key,)).fetchone()
            db.execute("COMMIT")
            return row is not None and row[0] == owner
        finally:
            db.close()

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        db = self._db()
        try:
            cur = db.execute("UPDATE leases SET expires = ? WHERE key = ? AND owner = ?",
                             (time.time() + ttl, key, owner))
            return cur.rowcount == 1
        finally:
            db.close()

    def release(self, key: str, owner: str) -> None:
        db = self._db()
        try:
            db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))
        finally:
            db.close()

    def holder(self, key: str) -> str | None:
        db = self._db()
        try:
            row = db.execute("SELECT owner FROM leases WHERE key = ? AND expires >= ?",
                             (key, time.time())).fetchone()
            return row[0] if row else None
        finally:
            db.close()


class RedisLeases:
    _RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
              "else return 0 end")
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

    def __init__(self, client, prefix: str = "wildspace:lease:"):
        self.r = client
        self.prefix = prefix

    def acquire(self, key: str, owner: str, ttl: float) -> bool:
        return bool(self.r.set(self.prefix + key, owner, nx=True, px=int(ttl * 1000)))

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        return bool(self.r.eval(self._RENEW, 1, self.prefix + key, owner, int(ttl * 1000)))

    def release(self, key: str, owner: str) -> None:
        self.r.eval(self._RELEASE, 1, self.prefix + key, owner)

    def holder(self, key: str) -> str | None:
        v = self.r.get(self.prefix + key)
        return v.decode() if isinstance(v, bytes) else v
