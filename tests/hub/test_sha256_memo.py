"""File hashes are remembered for settled files only, and any change of a file is seen."""

from __future__ import annotations

import hashlib
import json
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


def _settled(path, seconds=60):
    """Make ``path`` look written ``seconds`` ago (mtime) and settle its ctime too."""
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_hashes_of_large_files_are_remembered_across_processes(tmp_path, monkeypatch):
    import wildspace.hub.fetch as fetch

    monkeypatch.setattr(fetch, "SETTLED_S", 0.0)  # the ctime of a file just written counts as settled
    reads = []
    real = fetch._read_hashes
    monkeypatch.setattr(fetch, "_read_hashes", lambda p: reads.append(p) or real(p))
    f = tmp_path / "big.pt"
    f.write_bytes(b"x" * (fetch.DISK_MIN_BYTES + 5))
    _settled(f)
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert fetch.sha256_file(f) == want and len(reads) == 1
    fetch._HASHES_SEEN.clear()  # a new process: only the file under WILDSPACE_HOME is left
    assert fetch.sha256_file(f) == want and len(reads) == 1
    stored = json.loads(fetch._hashes_path().read_text())
    assert stored[str(f.resolve())]["sha256"] == want

    # same size, mtime put back: the ctime moved, so the file is read again
    st = f.stat()
    time.sleep(0.05)  # past the file system's timestamp tick (SETTLED_S covers that in use)
    f.write_bytes(b"y" * (fetch.DISK_MIN_BYTES + 5))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    fetch._HASHES_SEEN.clear()
    assert fetch.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest() and len(reads) == 2

    # a damaged or forged entry is never trusted: read again
    fetch._hashes_path().write_text(json.dumps({str(f.resolve()): {"stat": "junk", "sha256": "0" * 64}}))
    fetch._HASHES_SEEN.clear()
    assert fetch.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest() and len(reads) == 3
    fetch._hashes_path().write_text("{not json")
    fetch._HASHES_SEEN.clear()
    assert fetch.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest() and len(reads) == 4


def test_small_files_and_fresh_files_are_not_written_down(tmp_path):
    import wildspace.hub.fetch as fetch

    small = tmp_path / "small.pt"
    small.write_bytes(b"s" * 1000)
    _settled(small)
    fetch.sha256_file(small)
    fresh = tmp_path / "fresh.pt"
    fresh.write_bytes(b"f" * (fetch.DISK_MIN_BYTES + 1))  # ctime is now: not settled
    fetch.sha256_file(fresh)
    assert not fetch._hashes_path().exists()
