"""Turn uploads (loose files and zips) into a flat list of files to process, safely.

Zip members are checked before anything is written: no absolute or ``..`` paths (zip-slip),
no symbolic links, no nested archives, bounded sizes and compression ratios (zip bombs),
bounded counts. A refused member becomes a failure with its reason; the rest goes on.
Everything is written below ``dest`` and nowhere else.

Names on disk are safe (:func:`disk_name`: plain names are kept, so a zip's folder tree stays
as it is; a name over :data:`MAX_NAME_BYTES`, with control or reserved characters, or hidden,
is shortened and suffixed with a hash of the original); a member that still cannot be written
there (a file and a folder of the same name, a clash on a case-insensitive disk) is written
under a hashed name in ``.renamed/``. Results always carry the original names. A member that
cannot be written at all is that member's failure. An upload refused as a whole (too many
files) leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from wildspace.errors import UsageError
from wildspace.media.images import IMAGE_EXTENSIONS
from wildspace.settings.limits import LimitError, UploadLimits

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".asf", ".wmv", ".m4v", ".mpg", ".mpeg"})
ARCHIVE_EXTENSIONS = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")
MAX_NAME_BYTES = 120  # one folder or file name on disk (filesystems allow 255 bytes)
RENAMED = ".renamed"  # where members that cannot keep their path go (disk_name never starts with '.')
_UNSAFE = re.compile(r'[\x00-\x1f\x7f\\:*?"<>|]')


@dataclass
class Unpacked:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (path on disk, reported name)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (reported name, reason)


def disk_name(name: str) -> str:
    """A relative path any filesystem can hold for the reported ``name`` (a relative POSIX path).

    Each plain folder or file name is kept as it is. One that is longer than
    :data:`MAX_NAME_BYTES` (UTF-8), holds control or reserved characters (``\\ : * ? " < > |``),
    starts or ends with a dot or a space, becomes its sanitised, shortened self plus ``~`` and
    a hash of the original (the extension kept): distinct names stay distinct."""
    parts = [_safe_part(part) for part in PurePosixPath(name).parts if part not in ("", ".", "/")]
    return "/".join(parts) or "_"


def _safe_part(part: str) -> str:
    clean = _UNSAFE.sub("_", part).strip(" .")
    if clean == part and part != ".." and len(part.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES:
        return part
    digest = hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    suffix = PurePosixPath(clean).suffix if clean else ""
    if len(suffix) > 12 or not suffix[1:].isalnum() or not suffix.isascii():
        suffix = ""
    stem = clean[: len(clean) - len(suffix)] if suffix else clean
    stem = stem.encode("utf-8", "surrogatepass")[:60].decode("utf-8", "ignore").strip(" .")
    return f"{stem}~{digest}{suffix}"


def renamed_name(name: str) -> str:
    """The flat fallback path (under :data:`RENAMED`) for a reported ``name`` that cannot be
    written at its :func:`disk_name`."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    suffix = PurePosixPath(disk_name(name)).suffix
    return f"{RENAMED}/{digest}{suffix}"


def unpack_uploads(uploads: Iterable[str | Path], dest: Path, limits: UploadLimits = UploadLimits(),
                   extensions: frozenset[str] = IMAGE_EXTENSIONS) -> Unpacked:
    """Loose files are used in place; zip members with wanted ``extensions`` are extracted
    under ``dest`` (safe names on disk, see the module docstring). Reported names are relative
    paths inside a zip, else the file's name; a name seen twice gets a numeric suffix so no
    result is lost.

    Raises:
        LimitError: more than ``limits.max_files`` files; what was extracted is deleted first.
    """
    dest = Path(dest)
    roots: list[Path] = []
    try:
        return _unpack(uploads, dest, limits, extensions, roots)
    except BaseException:  # refused as a whole (or interrupted): leave nothing behind
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _unpack(uploads: Iterable[str | Path], dest: Path, limits: UploadLimits, extensions: frozenset[str],
            roots: list[Path]) -> Unpacked:
    out = Unpacked()
    seen: set[str] = set()
    total = 0
    for upload in uploads:
        upload = Path(upload)
        if upload.suffix.lower() == ".zip":
            total = _unpack_zip(upload, dest, limits, extensions, out, seen, total, roots)
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


def _check_count(out: Unpacked, limits: UploadLimits, coming: int = 0) -> None:
    if len(out.files) + coming > limits.max_files:

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
                out: Unpacked, seen: set[str], total: int, roots: list[Path]) -> int:
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, EOFError,
            NotImplementedError) as exc:  # corrupt directory, unsupported zip features
        out.failures.append((unique_name(zpath.name, seen), f"not a readable zip file: {_why(exc)}"))
        return total
    with zf:
        members = [(info, _refuse(info, limits, extensions)) for info in zf.infolist()
                   if not (is_folder(info) or any(j in info.filename for j in _JUNK)
                           or PurePosixPath(info.filename).name.startswith("._"))]
        members = [(info, reason) for info, reason in members if reason != "skip"]
        _check_count(out, limits, sum(reason is None for _, reason in members))  # before writing anything
        dest.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(dir=dest, prefix="zip-"))
        roots.append(root)
        for info, reason in members:
            report = unique_name(info.filename.replace("\\", "/").lstrip("/"), seen)
            if reason:
                out.failures.append((report, reason))
                continue
            if total + info.file_size > limits.max_total_bytes:
                out.failures.append((report, f"upload too large: total size limit of {limits.max_total_bytes} "
                                             "bytes reached (WILDSPACE_MAX_UPLOAD_MB)"))
                continue
            try:
                target, dst = _create(root, report)
            except OSError as exc:
                out.failures.append((report, f"cannot write this file to disk: {_why(exc)}"))
                continue
            try:
                with dst:
                    written = _copy_limited(zf, info, dst, limits.max_file_bytes)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError,
                    zlib.error) as exc:
                target.unlink(missing_ok=True)
                out.failures.append((report, f"cannot extract from zip: {_why(exc)}"))
                continue
            total += written
            out.files.append((target, report))
            _check_count(out, limits)
    return total


def _create(root: Path, report: str):
    """A new file for member ``report`` under ``root``: ``(path, open binary file)``, at its
    :func:`disk_name`, else (a file/folder clash, a name the disk refuses) at its
    :func:`renamed_name`. Raises OSError when neither can be written."""
    for rel in (disk_name(report), renamed_name(report)):
        target = root / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            return target, open(target, "xb")  # never over another member (case-insensitive disks)
        except OSError as exc:
            error = exc
    raise error


def _why(exc: BaseException) -> str:
    """An exception's reason without the absolute paths an OSError carries."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def is_folder(info: zipfile.ZipInfo) -> bool:
    """Whether a zip member is a folder; unlike ``ZipInfo.is_dir()`` it does not raise on the
    empty name of a corrupt member."""
    return info.filename.endswith("/")


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


def _copy_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dst, limit: int) -> int:
    """Extract one member into the open file ``dst``, stopping if it inflates past ``limit``
    (headers can lie)."""
    written = 0
    with zf.open(info) as src:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise UsageError(f"file inflates past the {limit}-byte limit")
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
                             if not is_folder(i) and PurePosixPath(i.filename).suffix.lower() in extensions)
            except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, EOFError, NotImplementedError):
                n += 1
        else:
            n += 1
    return n
