"""The errors a user can cause (bad names, missing or tampered models, bad files).

Front ends (CLI, app) show these as one clear line; anything else is a bug.
"""

from __future__ import annotations

from wildspace.formats.megadetector import FormatError
from wildspace.hub.fetch import HashMismatch, ModelUnavailable
from wildspace.hub.safe_pickle import UnsafeCheckpoint
from wildspace.hub.specs import SpecError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ModelUnavailable, HashMismatch, UnsafeCheckpoint, SpecError, FormatError,
    KeyError, FileNotFoundError, ValueError,
)
