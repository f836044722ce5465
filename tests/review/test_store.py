"""The corrections store: per owner, reopened intact, and whole after a SIGKILL mid-save."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from wildspace.review.store import Change, ReviewStore, owner_file


def test_saves_survive_reopening_and_owners_are_apart(tmp_path):
    a = ReviewStore(tmp_path, "alice")
    ids = a.save("run:batch/run-1", [Change("x.jpg", "d0", "reject", original={"conf": 0.4}),
                                     Change("x.jpg", "image", "status", "reviewed")], "Ann")
    a.close()
    again = ReviewStore(tmp_path, "alice")
    rows = again.corrections("run:batch/run-1")
    assert [r.id for r in rows] == ids
    assert rows[0].original == {"conf": 0.4} and rows[0].reviewer == "Ann" and rows[0].at
    assert again.version("run:batch/run-1") == ids[-1]
    assert ReviewStore(tmp_path, "bob").corrections("run:batch/run-1") == []
    assert owner_file(tmp_path, "alice") != owner_file(tmp_path, "bob")
    assert "alice" not in owner_file(tmp_path, "alice").name


def test_a_bad_change_is_refused_before_anything_is_stored(tmp_path):
    s = ReviewStore(tmp_path, "alice")
    with pytest.raises(ValueError, match="image status"):
        s.save("src", [Change("x.jpg", "d0", "reject"), Change("x.jpg", "image", "status", "great")], "Ann")
    with pytest.raises(ValueError, match="unknown correction"):
        Change("x.jpg", "d0", "approve")
    assert s.corrections("src") == []


WRITER = textwrap.dedent("""
    import sys
    from wildspace.review.store import Change, ReviewStore
    store = ReviewStore(sys.argv[1], "alice")
    n = 0
    while True:
        ids = store.save("src", [Change(f"f{n}.jpg", "d0", "reject", original={"n": n}),
                                 Change(f"f{n}.jpg", "image", "status", "reviewed")], "Ann")
        print(n, ids[0], ids[1], flush=True)  # only after the commit returned
        n += 1
""")


def test_sigkill_during_saves_keeps_every_committed_correction(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    committed = []
    try:
        for line in proc.stdout:
            committed.append(tuple(int(v) for v in line.split()))
            if len(committed) >= 200:
                break
    finally:
        proc.send_signal(signal.SIGKILL)  # in the middle of a later save
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    db = sqlite3.connect(owner_file(tmp_path, "alice"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    rows = ReviewStore(tmp_path, "alice").corrections("src")
    stored = {r.id: r for r in rows}
    for n, first, second in committed:
        assert stored[first].file == f"f{n}.jpg" and stored[first].original == {"n": n}
        assert stored[second].value == "reviewed"
    # a save is all or nothing: every image has both of its rows
    by_file = {}
    for r in rows:
        by_file.setdefault(r.file, []).append(r.action)
    assert all(sorted(v) == ["reject", "status"] for v in by_file.values())
