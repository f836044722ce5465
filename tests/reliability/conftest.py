"""Reliability tests reuse the queue fixtures (worker subprocesses, redis)."""

from tests.jobs.conftest import workers  # noqa: F401
