"""Command-line inputs → ``(path, name)`` pairs whose names never clash.

Names are relative, as MegaDetector writes them: with one folder, relative to it; with several
inputs, relative to their common parent (``detect cards/A cards/B`` gives ``A/IMG_0001.JPG``
and ``B/IMG_0001.JPG``), or, when they share nothing but the root, to each one's own parent
folder (no server path in any name). A ``.txt`` list names each file as its line says. Two inputs that
still give the same name are an error before anything runs.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from wildspace.errors import WildspaceError


class InputError(WildspaceError, ValueError):
    """An input is missing, or two inputs give the same name."""


def expand_inputs(paths: Iterable[str | Path], extensions: frozenset[str]) -> list[tuple[Path, str]]:
    """Files under ``paths`` with one of ``extensions`` (folders searched recursively; any
    other path is taken as one file, readable or not), named as the module docstring says."""
    given = [Path(p) for p in paths]
    for p in given:
        if not p.exists():
            raise InputError(f"input not found: {p.name or p}")
    plain = [p for p in given if p.suffix.lower() != ".txt" or p.is_dir()]
    anchors = [p.resolve() if p.is_dir() else p.parent.resolve() for p in plain]
    if len(plain) == 1 and plain[0].is_dir():
        base = anchors[0]
    elif anchors:
        base = Path(os.path.commonpath([str(a) for a in anchors]))
        if len(plain) > 1 and any(p.is_dir() and p.resolve() == base for p in plain):
            base = base.parent  # a folder and something inside it: keep the folder's name
    else:
        base = None
    out: list[tuple[Path, str]] = []
    for p in given:
        own = base
        if base is not None and base == Path(base.anchor):  # nothing shared but the root:
            own = p.parent.resolve()  # each input keeps its own folder's name
        if p.suffix.lower() == ".txt" and not p.is_dir():
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    f = Path(line)
                    if not f.is_absolute():
                        out.append((p.parent / f, line))
                        continue
                    try:  # no absolute path in any output: name it from the list's folder
                        name = f.resolve().relative_to(p.parent.resolve()).as_posix()
                    except ValueError:
                        name = f.name
                    out.append((f, name))
            continue
        assert own is not None  # p is in `plain`, so `anchors` was not empty
        # names come from where a file is listed, not where a symbolic link points
        if p.is_dir():
            folder = p.resolve()
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in extensions:
                    out.append((f, (folder / f.relative_to(p)).relative_to(own).as_posix()))
        else:
            out.append((p, (p.parent.resolve() / p.name).relative_to(own).as_posix()))
    dup = sorted(n for n, k in Counter(n for _, n in out).items() if k > 1)
    if dup:
        raise InputError(f"{len(dup)} name(s) given by more than one input ({', '.join(dup[:5])}); "
                         "pass the folders that keep them apart")
    return out
