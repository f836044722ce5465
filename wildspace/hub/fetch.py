"""Turn a :class:`ModelSpec` into a verified local file.

Order of sources: a file imported with ``models import`` (air-gapped stations), the Hub
(pinned commit, through the Hugging Face cache), then the spec's URL. Every file is checked
against the spec's sha256; where none is published, the first download's hash is recorded
and any later file that differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

from wildspace.errors import NotFound, WildspaceError
from wildspace.hub.specs import HubSource, ModelSpec
from wildspace.settings import Settings, load_settings

_CHUNK = 1 << 20


class ModelUnavailable(WildspaceError, RuntimeError):
    """The weights are not on this machine and cannot be downloaded now."""


class HashMismatch(WildspaceError, RuntimeError):
    """A weight file's sha256 differs from the spec's (or from the one recorded before)."""


def _read_hashes(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


_HASHES_SEEN: dict[tuple, tuple[str, str]] = {}
SETTLED_S = 2.0  # a file changed more recently than this is always read again
DISK_MIN_BYTES = 1 << 20  # smaller files are quicker to hash than to look up
DISK_MAX_ENTRIES = 512
HASHES_FILE = "file-hashes.json"
_REMEMBERED = re.compile(r"[0-9a-f]{64}:[0-9a-f]{32}")  # sha256:md5 of a remembered entry


def file_hashes(path: Path) -> tuple[str, str]:
    """``(sha256, md5)`` of a file, read once while the file stays the same.

    Remembered per process and, for files of 1 MB or more, across processes in
    ``$WILDSPACE_HOME/file-hashes.json``: every ``detect`` looks its checkpoint up by hash,
    and reading MDv5a's 281 MB took ~0.5 s of each command. "The same" is the same path,
    size, mtime, inode, device and **ctime**: any write to the file, and any reset of its
    mtime (``touch -d``), moves the ctime, which a user cannot set back (FAT/exFAT sticks keep
    a creation time there instead: a file rewritten to the same size with its mtime forged
    back would be taken for the old one). A file changed in the last 2 s is always read
    again: file timestamps are coarse, so a file could change again within the same tick."""
    import time

    path = Path(path)
    st = path.stat()
    if time.time() - max(st.st_mtime, st.st_ctime) < SETTLED_S:
        return _read_hashes(path)
    resolved = str(path.resolve())
    stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
    key = (resolved, *stamp)
    if key in _HASHES_SEEN:
        return _HASHES_SEEN[key]
    disk = _disk_hashes() if st.st_size >= DISK_MIN_BYTES else None
    entry = (disk or {}).get(resolved)
    if isinstance(entry, dict) and entry.get("stat") == stamp \
            and _REMEMBERED.fullmatch(f"{entry.get('sha256')}:{entry.get('md5')}"):
        found = (entry["sha256"], entry["md5"])
    else:
        found = _read_hashes(path)
        if disk is not None:
            _store_disk_hashes(disk, resolved, stamp, found)
    if len(_HASHES_SEEN) > 256:
        _HASHES_SEEN.clear()
    _HASHES_SEEN[key] = found
    return found


def _hashes_path() -> Path:
    return load_settings().home / HASHES_FILE


def _disk_hashes() -> dict:
    """The remembered hashes; an unreadable or damaged file counts as empty."""
    try:
        data = json.loads(_hashes_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store_disk_hashes(disk: dict, resolved: str, stamp: list, found: tuple[str, str]) -> None:
    """Add one file's hashes (the oldest entries go beyond :data:`DISK_MAX_ENTRIES`), written
    atomically; a read-only data dir just means reading the file again next time."""
    disk.pop(resolved, None)
    disk[resolved] = {"stat": stamp, "sha256": found[0], "md5": found[1]}
    while len(disk) > DISK_MAX_ENTRIES:
        disk.pop(next(iter(disk)))
    try:
        path = _hashes_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(path, json.dumps(disk, indent=0))
    except OSError:
        pass


def sha256_file(path: Path) -> str:
    return file_hashes(path)[0]


def import_hint(spec: ModelSpec) -> str:
    where = spec.weights.url or (
        f"https://huggingface.co/{spec.weights.hub.repo_id}" if spec.weights.hub else "its source"
    )
    return (f"get {spec.weights.filename} from {where} on a connected machine, then run: "
            f"python -m wildspace models import FILE --as {spec.name}")


class ModelStore:
    """Finds, downloads, imports and verifies weight files for specs."""

    def __init__(self, settings: Settings):
        self.settings = settings

    # -- verification -------------------------------------------------------------------

    def _recorded(self) -> dict[str, str]:
        p = self.settings.recorded_hashes
        return json.loads(p.read_text()) if p.exists() else {}

    def _record(self, name: str, digest: str) -> None:
        data = self._recorded()
        data[name] = digest
        _atomic_write_text(self.settings.recorded_hashes, json.dumps(data, indent=1, sort_keys=True))

    def verify(self, spec: ModelSpec, path: Path, record: bool = True) -> Path:
        """Check ``path`` against the spec's hash (or the recorded one); return it.

        Raises:
            HashMismatch: when the file differs.
        """
        digest, md5 = file_hashes(path)
        if spec.weights.md5 and md5 != spec.weights.md5:
            raise HashMismatch(f"{path} has md5 {md5}, but model '{spec.name}' requires the "
                               f"published md5 {spec.weights.md5}; refusing to load it")
        expected = spec.weights.sha256 or self._recorded().get(spec.name)
        if expected is None:
            if record:
                self._record(spec.name, digest)
            return path
        if digest != expected:
            source = "spec" if spec.weights.sha256 else "hash recorded on first download"
            raise HashMismatch(
                f"{path} has sha256 {digest}, but model '{spec.name}' requires {expected} "
                f"({source}); refusing to load it"
            )
        return path

    # -- locations ----------------------------------------------------------------------
    def imported_path(self, spec: ModelSpec) -> Path:
        return self.settings.imported_dir / spec.name / spec.weights.filename

    def cached_path(self, spec: ModelSpec) -> Path | None:
        """The local file for ``spec`` if there is one (imported or in the Hub cache)."""
        p = self.imported_path(spec)
        if p.is_file():
            return p
        if spec.weights.hub:
            from huggingface_hub import try_to_load_from_cache

            hub = spec.weights.hub
            hit = try_to_load_from_cache(
                hub.repo_id, hub.path_in_repo, cache_dir=self.settings.hf_cache,
                revision=hub.revision, repo_type=hub.repo_type,
            )
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
        return None

    # -- fetching -----------------------------------------------------------------------
    def fetch(self, spec: ModelSpec) -> Path:
        """Return a verified local path to the spec's weights, downloading if allowed.

        Raises:
            ModelUnavailable: offline (or unreachable) and not on this machine.
            HashMismatch: the file found or downloaded is not the one the spec pins.
        """
        local = self.cached_path(spec)
        if local is not None:
            return self.verify(spec, local)
        errors = []
        if not self.settings.offline:
            if spec.weights.hub:
                try:
                    return self.verify(spec, self._download_hub(spec.weights.hub))
                except HashMismatch:
                    raise
                except Exception as exc:  # network, auth, missing file: try the next source
                    errors.append(f"Hub: {type(exc).__name__}")
            if spec.weights.url:
                try:
                    return self._download_url(spec, spec.weights.url)
                except HashMismatch:
                    raise
                except OSError as exc:
                    errors.append(f"URL: {exc}")
        state = "offline (HF_HUB_OFFLINE=1)" if self.settings.offline else "not downloadable now"
        detail = f" [{'; '.join(errors)}]" if errors else ""
        raise ModelUnavailable(f"model '{spec.name}' is not on this machine and {state}{detail}; "
                               + import_hint(spec))

    def _download_hub(self, hub: HubSource) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(
            hub.repo_id, hub.path_in_repo, revision=hub.revision, repo_type=hub.repo_type,
            cache_dir=self.settings.hf_cache,
        ))

    def _download_url(self, spec: ModelSpec, url: str) -> Path:
        dest = self.imported_path(spec)
        dest.parent.mkdir(parents=True, exist_ok=True)
        h, h_md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "wildspace"})
            with urllib.request.urlopen(req, timeout=60) as resp, os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    h_md5.update(chunk)
                    out.write(chunk)
            digest = h.hexdigest()
            if spec.weights.md5 and h_md5.hexdigest() != spec.weights.md5:
                raise HashMismatch(f"download of '{spec.name}' has md5 {h_md5.hexdigest()}, "
                                   f"expected {spec.weights.md5}; refusing it")
            expected = spec.weights.sha256 or self._recorded().get(spec.name)
            if expected and digest != expected:
                raise HashMismatch(f"download of '{spec.name}' from {url} has sha256 "
                                   f"{digest}, expected {expected}; refusing it")
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if expected is None:
            self._record(spec.name, digest)
        return dest

    def import_file(self, spec: ModelSpec, file: Path) -> Path:
        """Copy a weight file brought in by hand into the store, after verifying it."""
        file = Path(file)
        if not file.is_file():
            raise NotFound(f"{file} is not a file")
        self.verify(spec, file, record=False)
        dest = self.imported_path(spec)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".import-")
        os.close(fd)
        try:
            shutil.copyfile(file, tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if spec.weights.sha256 is None:
            self.verify(spec, dest)  # records the hash on first import
        return dest


def _atomic_write_text(path: Path, text: str) -> None:
    from wildspace.atomic import write_text_atomic

    write_text_atomic(path, text)
