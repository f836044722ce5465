"""Fair use of a shared app: what one visitor may hold of it at a time, and for how long.

One :class:`Guards` object, read once from the environment with the other settings, bounds
requests waiting and running per visitor, their run time, the disk they and the whole app
may fill, and how long finished results are kept. A public Space (``SPACE_ID`` set) gets
stricter defaults than a field laptop; every value can be set:

=====================================  =============================================  =========  =========
variable                               meaning                                        local      Space
=====================================  =============================================  =========  =========
``WILDSPACE_WAITING_PER_VISITOR``      requests one visitor may have queued/running   8          3
``WILDSPACE_HEAVY_PER_VISITOR``        batch / video / training requests at a time    2          1
``WILDSPACE_JOBS_PER_VISITOR``         unfinished queued jobs per visitor             20         2
``WILDSPACE_REQUEST_SECONDS``          run time of one request in the app             3600       600
``WILDSPACE_DISK_BUDGET_MB``           uploads + runs + exports + Gradio cache        51200      10240
``WILDSPACE_REQUEST_DISK_MB``          disk one request may need                      8192       1024
``WILDSPACE_VISITOR_DISK_MB``          disk one visitor's kept results may hold       20480      2048
``WILDSPACE_RESULT_HOURS``             finished results are deleted after this        72         6
``WILDSPACE_TRUSTED_PROXIES``          proxies whose X-Forwarded-For is believed      0          1
=====================================  =============================================  =========  =========
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Mapping

from wildspace.errors import WildspaceError
from wildspace.settings.limits import read_numbers

MB = 2**20


class GuardError(WildspaceError, ValueError):
    """A fair-use setting is not a valid number."""


@dataclass(frozen=True)
class Guards:
    """Per-visitor and whole-app bounds (counts, seconds, bytes, hours)."""

    waiting_per_visitor: int = 8
    heavy_per_visitor: int = 2
    jobs_per_visitor: int = 20
    request_seconds: float = 3600.0
    disk_budget_bytes: int = 51200 * MB
    request_disk_bytes: int = 8192 * MB
    visitor_disk_bytes: int = 20480 * MB
    result_hours: float = 72.0
    trusted_proxies: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0 or (value == 0 and f.name != "trusted_proxies"):
                raise GuardError(f"{ENV_VARS[f.name]} must be positive, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, public: bool = False) -> Guards:
        """The guards from ``WILDSPACE_*`` variables; unset ones keep the local or Space default."""
        env = os.environ if env is None else env
        values: dict[str, Any] = dict(SPACE_DEFAULTS) if public else {}
        values.update(read_numbers(env, ENV_VARS, floats=("request_seconds", "result_hours"), error=GuardError))
        return cls(**values)

    @property
    def result_seconds(self) -> float:
        return self.result_hours * 3600.0


ENV_VARS = {
    "waiting_per_visitor": "WILDSPACE_WAITING_PER_VISITOR",
    "heavy_per_visitor": "WILDSPACE_HEAVY_PER_VISITOR",
    "jobs_per_visitor": "WILDSPACE_JOBS_PER_VISITOR",
    "request_seconds": "WILDSPACE_REQUEST_SECONDS",
    "disk_budget_bytes": "WILDSPACE_DISK_BUDGET_MB",
    "request_disk_bytes": "WILDSPACE_REQUEST_DISK_MB",
    "visitor_disk_bytes": "WILDSPACE_VISITOR_DISK_MB",
    "result_hours": "WILDSPACE_RESULT_HOURS",
    "trusted_proxies": "WILDSPACE_TRUSTED_PROXIES",
}

SPACE_DEFAULTS: dict[str, float | int] = {
    "waiting_per_visitor": 3,
    "heavy_per_visitor": 1,
    "jobs_per_visitor": 2,
    "request_seconds": 600.0,
    "disk_budget_bytes": 10240 * MB,
    "request_disk_bytes": 1024 * MB,
    "visitor_disk_bytes": 2048 * MB,
    "result_hours": 6.0,
    "trusted_proxies": 1,
}
