"""SIGKILL a process mid-write, many times: results files and galleries must always load
(the old version or the new one, never a corrupt one)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from wildspace.formats.csv_export import write_detections_csv
    from wildspace.formats.megadetector import build_results, write_results
    from wildspace.types import Detection, ImageResult

    out = Path(sys.argv[1])
    labels = ("animal", "person", "vehicle")
    def results(n):
        return [ImageResult(f"img{i:06d}.jpg", (Detection(0, 0.9, (0.1, 0.1, 0.2, 0.2)),) * 3,
                            width=640, height=480) for i in range(n)]
    docs = [build_results(results(n), labels, "md.pt", {}) for n in (20000, 30000)]
    k = 0
    while True:
        n = (20000, 30000)[k % 2]
        write_results(docs[k % 2], out / "results.json")
        write_detections_csv(results(n)[:3000], labels, out / "detections.csv")
        print("wrote", flush=True)
        k += 1
""")

GALLERY_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from wildspace.reid.gallery import GalleryData, Record, encode_jpeg, save_gallery

    root = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    jpeg = encode_jpeg(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    def gallery(n):
        return GalleryData("kill", [Record(f"im{i}", f"id{i % 3}") for i in range(n)], [jpeg] * n)
    sizes = (40, 60)
    k = 0
    while True:
        save_gallery(root, gallery(sizes[k % 2]))
        print("wrote", flush=True)
        k += 1
""")


def _kill_loop(script: str, target: Path, check, kills: int = KILLS) -> None:
    """Start ``script``; after its first complete write, SIGKILL it at a random moment;
    ``check(target)`` must pass; repeat ``kills`` times."""
    rng = random.Random(8)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(kills):
        p = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            assert line.startswith("wrote"), p.stderr.read()
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        check(target)


@pytest.mark.slow
def test_results_files_survive_sigkill(tmp_path):
    import csv

    from wildspace.formats.megadetector import read_results

    def check(out: Path) -> None:
        doc = read_results(out / "results.json")
        assert len(doc["images"]) in (20000, 30000)
        with open(out / "detections.csv", newline="") as f:
            assert len(list(csv.reader(f))) == 1 + 3000 * 3
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        # a killed writer can leave its temporary file; it is never read and never the target
        assert all(n.startswith(".") for n in leftovers)

    _kill_loop(WRITER, tmp_path, check)


@pytest.mark.slow
def test_galleries_survive_sigkill(tmp_path):
    from wildspace.reid.gallery import open_gallery

    def check(root: Path) -> None:
        g = open_gallery(root)
        assert len(g) in (40, 60) and len(g.images) == len(g)
        assert g.image(0).shape == (64, 64, 3)

    _kill_loop(GALLERY_WRITER, tmp_path / "gallery", check)
