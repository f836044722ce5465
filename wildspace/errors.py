"""The errors a user can cause: bad names, settings, files or data; missing or tampered models.

Every one derives from :class:`WildspaceError` (and from the built-in it behaves like, so
``except ValueError`` still catches a :class:`UsageError`). Front ends (CLI, app, job runner)
catch :data:`USER_ERRORS` and show one clear line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WildspaceError(Exception):
    """Base of every user-facing error; its message is what the user reads."""


class UsageError(WildspaceError, ValueError):
    """A value the user gave (argument, setting, file content) is not acceptable."""


class NotFound(WildspaceError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UnknownName(WildspaceError, KeyError):
    """A name the user gave (model, classifier, …) is not known; the message lists the known ones."""


USER_ERRORS: tuple[type[BaseException], ...] = (WildspaceError,)
