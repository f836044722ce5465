"""Memory stays bounded on bombs (peak RSS of a fresh process), and job ids are not guessable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.corpus import build_corpus

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from wildspace.media.archives import unpack_uploads
    from wildspace.media.images import ImageReadError, load_image

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reasons = {}
    for p in sys.argv[2:]:
        p = Path(p)
        if p.suffix == ".zip":
            u = unpack_uploads([p], Path(sys.argv[1]))
            reasons.update(dict(u.failures))
        else:
            try:
                load_image(p)
            except ImageReadError as exc:
                reasons[p.name] = str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kb": after - before, "reasons": reasons}))
""")


def test_bombs_are_refused_without_using_memory(tmp_path):
    cases = {c.name: c for c in build_corpus(tmp_path / "in", videos=False)}
    big_zip = tmp_path / "in" / "many.zip"  # 50 members of 20 MB zeros each: 1 GB inflated
    import zipfile

    with zipfile.ZipFile(big_zip, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(50):
            z.writestr(f"z{i}.jpg", b"\0" * (20 * 2**20))
    # a PNG that claims 3.6 gigapixels; the hostile zip holds a 20 MB zero "jpg"; a TIFF and a
    # PNG's EXIF whose overlapping tags would make Pillow copy 800 MB out of 424 kB
    paths = [cases["bomb.png"].path, cases["../escape.jpg"].path, big_zip, cases["tiff-tag-bomb.tif"].path,
             cases["exif-bomb.png"].path]
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "unpacked"), *map(str, paths)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "too large" in report["reasons"]["bomb.png"]
    assert "zip bomb" in report["reasons"]["card/bomb.jpg"]
    assert all("zip bomb" in report["reasons"][f"z{i}.jpg"] for i in range(50))
    assert "metadata too large" in report["reasons"]["tiff-tag-bomb.tif"]
    assert "exif-bomb.png" not in report["reasons"]  # read, without its EXIF
    assert report["growth_kb"] < 64 * 1024, report["growth_kb"]  # < 64 MB above the imports
    unpacked = sum(p.stat().st_size for p in (tmp_path / "unpacked").rglob("*") if p.is_file())
    assert unpacked < 1 * 2**20


def test_job_ids_are_random_and_someone_elses_job_looks_absent(tmp_path):
    from wildspace.jobs.store import JobNotFound, JobSpec, JobStore

    store = JobStore(tmp_path / "storage")
    ids = [store.create(JobSpec(owner="alice", kind="detect-images", inputs=[{"name": "a.jpg", "path": "a.jpg"}])).id for _ in range(50)]
    assert len(set(ids)) == 50 and all(len(i) == 32 for i in ids)  # 128 random bits, hex
    assert len({i[:6] for i in ids}) == 50  # no counter or timestamp prefix
    answers = []
    for job_id, owner in ((ids[0], "mallory"), (ids[0][:-1] + "A", "mallory"), ("0", "mallory")):
        for call in (store.status, store.spec, store.cancel):
            with pytest.raises(JobNotFound) as err:
                call(job_id, owner)
            answers.append(type(err.value))
    assert set(answers) == {JobNotFound}
    assert store.list("mallory") == [] and len(store.list("alice")) == 50
    assert not store.cancelled(ids[0])
