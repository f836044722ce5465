"""Turn uploads (loose files and zips) into a flat list of files to process, safely.

Zip members are checked before anything is written: no absolute or ``..`` paths (zip-slip),
no symbolic links, no nested archives, bounded sizes and compression ratios (zip bombs),
bounded counts. A refused member becomes a failure with its reason; the rest goes on.
Everything is written below ``dest`` and nowhere else.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from wildspace.media.images import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".asf", ".wmv", ".m4v", ".mpg", ".mpeg"})
ARCHIVE_EXTENSIONS = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on one upload (bytes, counts); built from :class:`wildspace.limits.Limits`."""

    max_files: int = 20_000
    max_file_bytes: int = 200 * 2**20
    max_total_bytes: int = 20 * 2**30
    max_ratio: float = 200.0  # uncompressed / compressed, per member


@dataclass
class Unpacked:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (path on disk, reported name)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (reported name, reason)


def unpack_uploads(uploads: Iterable[str | Path], dest: Path, limits: UploadLimits = UploadLimits(),
                   extensions: frozenset[str] = IMAGE_EXTENSIONS) -> Unpacked:
    """Loose files are used in place; zip members with wanted ``extensions`` are extracted
    under ``dest``. Reported names are relative paths inside a zip, else the file's name;
    a name seen twice gets a numeric suffix so no result is lost."""
    dest = Path(dest)
    out = Unpacked()
    seen: set[str] = set()
    total = 0
    for upload in uploads:
        upload = Path(upload)
        if upload.suffix.lower() == ".zip":
            total = _unpack_zip(upload, dest, limits, extensions, out, seen, total)
        elif upload.suffix.lower() in extensions or upload.suffix.lower() not in ARCHIVE_EXTENSIONS:
            name = unique_name(upload.name, seen)
            size = upload.stat().st_size if upload.is_file() else 0
            if size > limits.max_file_bytes:
                out.failures.append((name, f"file too large ({size} bytes; limit {limits.max_file_bytes}, "
                                           "WILDSPACE_MAX_FILE_MB)"))
            elif total + size > limits.max_total_bytes:
                out.failures.append((name, f"upload too large: total size limit of {limits.max_total_bytes} "
                                           "bytes reached (WILDSPACE_MAX_UPLOAD_MB)"))
            else:
                total += size
                out.files.append((upload, name))
        else:
            out.failures.append((unique_name(upload.name, seen), "archive type not supported (use .zip)"))
        _check_count(out, limits)
    return out


def _check_count(out: Unpacked, limits: UploadLimits) -> None:
    if len(out.files) > limits.max_files:
        from wildspace.limits import LimitError

        raise LimitError(f"too many files: more than {limits.max_files} in one upload "
                         "(WILDSPACE_MAX_FILES)")


def unique_name(name: str, seen: set[str]) -> str:
    """``name``, or ``stem_1.ext``, ``stem_2.ext`` … if already in ``seen``; adds it to ``seen``."""
    candidate, n = name, 1
    while candidate in seen:
        p = PurePosixPath(name)
        candidate = str(p.with_name(f"{p.stem}_{n}{p.suffix}"))
        n += 1
    seen.add(candidate)
    return candidate


def _unpack_zip(zpath: Path, dest: Path, limits: UploadLimits, extensions: frozenset[str],
                out: Unpacked, seen: set[str], total: int) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=dest, prefix="zip-"))
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, EOFError,
            NotImplementedError) as exc:  # corrupt directory, unsupported zip features
        out.failures.append((unique_name(zpath.name, seen), f"not a readable zip file: {exc}"))
        return total
    with zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or any(j in name for j in _JUNK) or PurePosixPath(name).name.startswith("._"):
                continue
            reason = _refuse(info, limits, extensions)
            if reason == "skip":
                continue
            report = unique_name(name.replace("\\", "/").lstrip("/"), seen)
            if reason:
                out.failures.append((report, reason))
                continue
            if total + info.file_size > limits.max_total_bytes:
                out.failures.append((report, f"upload too large: total size limit of {limits.max_total_bytes} "
                                             "bytes reached (WILDSPACE_MAX_UPLOAD_MB)"))
                continue
            target = root / PurePosixPath(report)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                written = _copy_limited(zf, info, target, limits.max_file_bytes)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
                target.unlink(missing_ok=True)
                out.failures.append((report, f"cannot extract from zip: {exc}"))
                continue
            total += written
            out.files.append((target, report))
            _check_count(out, limits)
    return total


def _refuse(info: zipfile.ZipInfo, limits: UploadLimits, extensions: frozenset[str]) -> str | None:
    """A reason to refuse a member, ``"skip"`` to ignore it silently, or None."""
    p = PurePosixPath(info.filename.replace("\\", "/"))
    mode = info.external_attr >> 16
    if p.is_absolute() or ".." in p.parts or (p.parts and p.parts[0].endswith(":")):
        return "unsafe path in zip (outside the archive)"
    if stat.S_ISLNK(mode):
        return "symbolic link in zip (not followed)"
    suffix = p.suffix.lower()
    if suffix in ARCHIVE_EXTENSIONS:
        return "nested archive (not opened; upload it separately)"
    if suffix not in extensions:
        return "skip"
    if info.file_size > limits.max_file_bytes:
        return f"file too large ({info.file_size} bytes; limit {limits.max_file_bytes}, WILDSPACE_MAX_FILE_MB)"
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        return "suspicious compression ratio (zip bomb guard)"
    return None


def _copy_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int) -> int:
    """Extract one member, stopping if it inflates past ``limit`` (headers can lie)."""
    written = 0
    with zf.open(info) as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise ValueError(f"file inflates past the {limit}-byte limit")
            dst.write(chunk)
    return written


def clean(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)


def count_inputs(uploads: Iterable[str | Path], extensions: frozenset[str] = IMAGE_EXTENSIONS) -> int:
    """How many files an upload holds (zip members with wanted extensions), read cheaply
    from zip directories; used to decide whether a batch goes to the worker queue."""
    n = 0
    for upload in uploads:
        upload = Path(upload)
        if upload.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(upload) as z:
                    n += sum(1 for i in z.infolist()
                             if not i.is_dir() and PurePosixPath(i.filename).suffix.lower() in extensions)
            except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, EOFError, NotImplementedError):
                n += 1
        else:
            n += 1
    return n
