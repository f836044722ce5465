"""File hashes are remembered for settled files only, and any change of a file is seen."""

from __future__ import annotations

import hashlib
import os
import time

from wildspace.hub.fetch import sha256_file


def test_changes_are_always_seen(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(b"a" * 1000)
    assert sha256_file(f) == hashlib.sha256(b"a" * 1000).hexdigest()
    f.write_bytes(b"b" * 1000)  # same size, rewritten at once: still re-hashed
    assert sha256_file(f) == hashlib.sha256(b"b" * 1000).hexdigest()
    old = time.time() - 60
    os.utime(f, (old, old))  # settled: remembered ...
    assert sha256_file(f) == hashlib.sha256(b"b" * 1000).hexdigest()
    f.write_bytes(b"c" * 1000)  # ... until it changes
    assert sha256_file(f) == hashlib.sha256(b"c" * 1000).hexdigest()
