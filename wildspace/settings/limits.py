"""What one request may ask of the system: upload size, file count, pixels, video length.

One :class:`Limits` object, read once from the environment, is used by the app, the CLI and
the workers, so a public Space and a field laptop differ only in their settings:

================================  ===========================================  =========
variable                          meaning                                      default
================================  ===========================================  =========
``WILDSPACE_MAX_UPLOAD_MB``       total size of one upload (all files), MB     2048
``WILDSPACE_MAX_FILE_MB``         size of one file (loose or inside a zip), MB  200
``WILDSPACE_MAX_FILES``           files in one upload / batch                  20000
``WILDSPACE_MAX_PIXELS``          pixels of one image (decompression bombs)    200000000
``WILDSPACE_MAX_VIDEO_SECONDS``   length of one video, seconds                 3600
================================  ===========================================  =========

A file over a per-file limit is a ``failure`` of that file (the rest goes on); an upload
with too many files or too many bytes in all is refused with one clear error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from wildspace.errors import WildspaceError

MB = 2**20

ENV_VARS = {
    "max_upload_bytes": "WILDSPACE_MAX_UPLOAD_MB",
    "max_file_bytes": "WILDSPACE_MAX_FILE_MB",
    "max_files": "WILDSPACE_MAX_FILES",
    "max_pixels": "WILDSPACE_MAX_PIXELS",
    "max_video_seconds": "WILDSPACE_MAX_VIDEO_SECONDS",
}


class LimitError(WildspaceError, ValueError):
    """A request exceeds a configured limit (the message names the limit and its setting)."""


@dataclass(frozen=True)
class Limits:
    """Per-request limits (bytes, counts, pixels, seconds); all must be positive."""

    max_upload_bytes: int = 2048 * MB
    max_file_bytes: int = 200 * MB
    max_files: int = 20_000
    max_pixels: int = 200_000_000
    max_video_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for name in ENV_VARS:
            value = getattr(self, name)
            if not value > 0:
                raise LimitError(f"limit {name} ({ENV_VARS[name]}) must be positive, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        """Read the ``WILDSPACE_MAX_*`` variables (unset ones keep their defaults).

        Raises:
            LimitError: a variable is not a positive number.
        """
        env = os.environ if env is None else env
        values = read_numbers(env, ENV_VARS, floats=("max_video_seconds",), error=LimitError)
        return cls(**values)

    def upload_limits(self) -> UploadLimits:
        """The :class:`UploadLimits` for unpacking uploads."""
        return UploadLimits(max_files=self.max_files, max_file_bytes=self.max_file_bytes,
                            max_total_bytes=self.max_upload_bytes)

    def describe(self) -> str:
        """One line for the app and ``--help``: the limits in human units."""
        return (f"up to {self.max_files} files and {self.max_upload_bytes / MB:g} MB per upload, "
                f"{self.max_file_bytes / MB:g} MB per file, {self.max_pixels / 1e6:g} megapixels "
                f"per image, {self.max_video_seconds:g} s per video")


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on one upload (bytes, counts); built from :class:`wildspace.settings.limits.Limits`."""

    max_files: int = 20_000
    max_file_bytes: int = 200 * 2**20
    max_total_bytes: int = 20 * 2**30
    max_ratio: float = 200.0  # uncompressed / compressed, per member


def read_numbers(env: Mapping[str, str], env_vars: Mapping[str, str], floats: tuple[str, ...] = (),
                 error: type[Exception] = ValueError) -> dict[str, Any]:
    """Numbers from ``env`` for the fields in ``env_vars`` (field -> variable) that are set:
    ``*_bytes`` fields are given in MB, ``floats`` stay floats, the rest are whole numbers.

    Raises:
        error: a variable is not a number (the message names it).
    """
    values: dict[str, Any] = {}
    for name, var in env_vars.items():
        raw = (env.get(var) or "").strip()
        if not raw:
            continue
        try:
            number = float(raw)
        except ValueError:
            raise error(f"{var} must be a positive number, got {raw!r}") from None
        if name.endswith("_bytes"):
            values[name] = int(number * MB)
        elif name in floats:
            values[name] = number
        else:
            values[name] = int(number)
    return values
