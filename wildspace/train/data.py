"""Labelled images for training: ImageFolder or CSV input, held-out splits, class balance.

Inputs:

- an **ImageFolder**: ``DIR/<class>/…/*.jpg`` (one folder per class; images anywhere below it);
- a **CSV** with a ``file`` (or ``path``/``filepath``) and a ``label`` column; paths are
  relative to the CSV's folder (or ``images_dir``). Optional ``location`` and ``sequence``
  columns make the location and sequence splits possible.

Splits keep what the seed projects learned about camera traps: frames of one sequence (or one
camera location) look alike, so ``location`` and ``sequence`` splits put every image of a
group on the same side; ``random`` is stratified by class.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from wildspace.errors import NotFound, UsageError
from wildspace.media.images import IMAGE_EXTENSIONS

SPLITS = ("random", "location", "sequence")
BALANCE = ("sampler", "weights", "none")
_FILE_COLUMNS = ("file", "path", "filepath", "filename", "image")


@dataclass(frozen=True)
class Sample:
    """One labelled image; ``group`` is its location or sequence (``""`` when unknown)."""

    path: str
    label: str
    location: str = ""
    sequence: str = ""


@dataclass(frozen=True)
class Split:
    """Indexes into a sample list: train, validation (early stopping) and held-out test."""

    train: list[int]
    val: list[int]
    test: list[int]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Split":
        d = json.loads(text)
        return cls(train=list(d["train"]), val=list(d["val"]), test=list(d["test"]))


def load_samples(data: str | Path, images_dir: str | Path | None = None) -> list[Sample]:
    """Labelled samples from an ImageFolder directory or a CSV file.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: no classes/images, a CSV without the needed columns, or fewer than two
            classes.
    """
    data = Path(data)
    if not data.exists():
        raise NotFound(f"training data not found: {data}")
    samples = _from_csv(data, images_dir) if data.is_file() else _from_folder(data)
    counts = Counter(s.label for s in samples)
    if len(counts) < 2:
        raise UsageError(f"{data}: need at least two classes to train a classifier, found "
                         f"{len(counts)} ({', '.join(counts) or 'none'})")
    return samples


def _from_folder(root: Path) -> list[Sample]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    out = []
    for c in classes:
        for p in sorted((root / c).rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
                out.append(Sample(str(p), c))
    if not out:
        raise UsageError(f"{root}: no images found; expected one folder per class "
                         f"(e.g. {root}/ivory/*.jpg, {root}/non_ivory/*.jpg)")
    return out


def _from_csv(path: Path, images_dir: str | Path | None) -> list[Sample]:
    if path.suffix.lower() != ".csv":
        raise UsageError(f"{path}: training data must be a folder of class folders or a .csv file")
    base = Path(images_dir) if images_dir else path.parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UsageError(f"{path}: the CSV has no rows")
    cols = {c.strip().lower(): c for c in rows[0]}
    file_col = next((cols[c] for c in _FILE_COLUMNS if c in cols), None)
    if file_col is None or "label" not in cols:
        raise UsageError(f"{path}: the CSV needs a file column ({', '.join(_FILE_COLUMNS)}) and a "
                         f"'label' column; found {', '.join(rows[0])}")
    out = []
    for n, row in enumerate(rows, start=2):
        rel, label = (row[file_col] or "").strip(), (row[cols["label"]] or "").strip()
        if not rel or not label:
            raise UsageError(f"{path} line {n}: empty file or label")
        p = Path(rel) if Path(rel).is_absolute() else base / rel
        if not p.is_file():
            raise NotFound(f"{path} line {n}: image not found: {p}")
        out.append(Sample(str(p), label, (row.get(cols.get("location", ""), "") or "").strip(),
                          (row.get(cols.get("sequence", ""), "") or "").strip()))
    return out


def rename_labels(samples: Sequence[Sample], mapping: dict[str, str]) -> list[Sample]:
    """Rename classes (``{"ivory": "elephant_ivory"}``); unknown keys are an error."""
    known = {s.label for s in samples}
    bad = sorted(set(mapping) - known)
    if bad:
        raise UsageError(f"cannot rename {', '.join(bad)}: not a class of the data "
                         f"(classes: {', '.join(sorted(known))})")
    return [Sample(s.path, mapping.get(s.label, s.label), s.location, s.sequence) for s in samples]


def class_names(samples: Sequence[Sample]) -> list[str]:
    return sorted({s.label for s in samples})


def split_samples(samples: Sequence[Sample], method: str = "random", test_fraction: float = 0.2,
                  val_fraction: float = 0.15, seed: int = 0) -> Split:
    """Split into train / val / test.

    ``val_fraction`` is taken from what remains after the test split. ``random`` is stratified
    by class; ``location``/``sequence`` keep every group on one side.

    Raises:
        ValueError: unknown method, bad fractions, or a group split without group columns.
    """
    if method not in SPLITS:
        raise UsageError(f"split '{method}' is not one of {', '.join(SPLITS)}")
    for name, v in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= v < 0.9:
            raise UsageError(f"{name} must be in [0, 0.9), got {v}")
    rng = random.Random(seed)
    idx = list(range(len(samples)))
    if method == "random":
        keys = [s.label for s in samples]
        test, rest = _stratified(idx, keys, test_fraction, rng)
        val, train = _stratified(rest, keys, val_fraction, rng)
    else:
        groups = [getattr(s, method) for s in samples]
        if not all(groups):
            raise UsageError(f"split '{method}' needs a CSV with a '{method}' column for every image; "
                             f"use --split random for an ImageFolder")
        test, rest = _grouped(idx, groups, test_fraction, rng)
        val, train = _grouped(rest, groups, val_fraction, rng)
    if not train:
        raise UsageError(f"no training images left after the split ({len(samples)} images)")
    return Split(sorted(train), sorted(val), sorted(test))


def _stratified(idx: list[int], keys: list[str], fraction: float, rng: random.Random):
    """Take ``fraction`` of each class (at least one when the class has 2+ images)."""
    picked, rest = [], []
    by_key: dict[str, list[int]] = {}
    for i in idx:
        by_key.setdefault(keys[i], []).append(i)
    for k in sorted(by_key):
        members = by_key[k][:]
        rng.shuffle(members)
        n = round(len(members) * fraction)
        if fraction > 0 and n == 0 and len(members) >= 2:
            n = 1
        picked += members[:n]
        rest += members[n:]
    return picked, rest


def _grouped(idx: list[int], groups: list[str], fraction: float, rng: random.Random):
    """Whole groups, shuffled, until ``fraction`` of the images is taken."""
    by_group: dict[str, list[int]] = {}
    for i in idx:
        by_group.setdefault(groups[i], []).append(i)
    names = sorted(by_group)
    rng.shuffle(names)
    picked: list[int] = []
    target = len(idx) * fraction
    rest = []
    for g in names:
        if len(picked) < target and len(names) > 1:
            picked += by_group[g]
        else:
            rest += by_group[g]
    if not rest and picked:  # never leave the other side empty
        g = names[-1]
        picked = [i for i in picked if i not in by_group[g]]
        rest = by_group[g]
    return picked, rest


def class_counts(samples: Sequence[Sample], indexes: Sequence[int], labels: Sequence[str]) -> list[int]:
    c = Counter(samples[i].label for i in indexes)
    return [c.get(label, 0) for label in labels]


def balance_weights(samples: Sequence[Sample], indexes: Sequence[int], labels: Sequence[str]) -> list[float]:
    """Per-class weights ``n / (k * n_c)`` (inverse frequency; 1.0 when balanced)."""
    counts = class_counts(samples, indexes, labels)
    n, k = sum(counts), len(labels)
    return [n / (k * c) if c else 0.0 for c in counts]
