"""Human-drawn animal boxes for the snow-leopard dev set, from the HotSpotter databases it came from.

The dev photos come from obaiga/hotspotter (``source_path`` and ``source_commit`` in the dev
``identities.csv``). Each ``hstest/testdb/SetNN/_hsdb`` there holds the chips people drew:
``image_table.csv`` (ImgID -> file name) and ``chip_table.csv`` (``ChipID, ImgID, NameID,
[x y w h], theta`` in the original image's pixels, often several chips per image: flank,
tail, head). This script writes, for every dev image, the union of its chips as one
normalised box, in the ``--boxes`` format of ``bench/reid_ablation.py``
(``{file: [["animal", 1.0, [x, y, w, h]]]}``); images without a chip get ``[]``.

The repository has no licence, so neither its tables nor the boxes are stored in this
project: run this against a local clone (``git clone`` of obaiga/hotspotter)::

    python bench/hotspotter_chips.py --repo PATH/TO/hotspotter --out /tmp/human_boxes.json
    python bench/reid_ablation.py --boxes /tmp/human_boxes.json --variant chips --event-gap 30
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "snow-leopard-dev"
CHIP_ROW = re.compile(r"\s*\d+,\s*(\d+),\s*-?\d+,\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]")


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def git_show(repo: Path, commit: str, path: str) -> str | None:
    done = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def chips_by_file(repo: Path, commit: str, set_dir: str) -> dict[str, list[tuple[float, ...]]]:
    """File name -> chip boxes ``(x, y, w, h)`` in px, from one HotSpotter database."""
    images = git_show(repo, commit, f"{set_dir}/_hsdb/image_table.csv")
    chips = git_show(repo, commit, f"{set_dir}/_hsdb/chip_table.csv")
    if not images or not chips:
        return {}
    names = {}
    for line in table_rows(images):
        gid, gname = (x.strip() for x in line.split(",")[:2])
        names[int(gid)] = gname.replace("\\", "/").split("/")[-1]
    out: dict[str, list[tuple[float, ...]]] = {}
    for line in table_rows(chips):
        m = CHIP_ROW.match(line)
        if m and int(m.group(1)) in names:
            out.setdefault(names[int(m.group(1))], []).append(tuple(float(v) for v in m.groups()[1:]))
    return out


def databases(repo: Path, row: dict) -> list[tuple[str, str]]:
    """``(commit, folder)`` of the HotSpotter databases that may hold ``row``'s chips: its own
    Set, every other ``hstest/testdb/SetNN``, then the ``Snow leopard/*`` databases (some dev
    photos were taken from those folders)."""
    commit, parts = row["source_commit"], row["source_path"].split("/")
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-d", "--name-only", commit,
                              "hstest/testdb/", "Snow leopard/"], capture_output=True, text=True).stdout
    folders = [f for f in listing.splitlines()
               if re.fullmatch(r"hstest/testdb/Set\d\d", f) or f.startswith("Snow leopard/")]
    own = "/".join(parts[:3]) if parts[0] == "hstest" else None
    ordered = ([own] if own in folders else []) + sorted(f for f in folders if f != own and f.startswith("hstest"))
    ordered += sorted(f for f in folders if f.startswith("Snow leopard/"))
    return [(commit, f) for f in ordered]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, required=True, help="a git clone of obaiga/hotspotter")
    ap.add_argument("--data", type=Path, default=DEV)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.data / "identities.csv")))
    found: dict[tuple[str, str], dict] = {}
    out, missing = {}, []
    for r in rows:
        chips = []
        for key in databases(args.repo, r):  # the image's own Set first
            if key not in found:
                found[key] = chips_by_file(args.repo, *key)
            chips = found[key].get(r["file"], [])
            if chips:
                break
        if not chips:
            out[r["file"]] = []
            missing.append(r["file"])
            continue
        width, height = (int(v) for v in r["original_size_wxh"].split("x"))
        x0 = max(0.0, min(c[0] for c in chips) / width)
        y0 = max(0.0, min(c[1] for c in chips) / height)
        x1 = min(1.0, max(c[0] + c[2] for c in chips) / width)
        y1 = min(1.0, max(c[1] + c[3] for c in chips) / height)
        out[r["file"]] = [["animal", 1.0, [round(x0, 6), round(y0, 6), round(x1 - x0, 6), round(y1 - y0, 6)]]]
    args.out.write_text(json.dumps(out, indent=1))
    print(f"{len(rows) - len(missing)} of {len(rows)} images have a chip box -> {args.out}")
    for name in missing:
        print(f"  no chip in its source database: {name}")


if __name__ == "__main__":
    main()
