"""Fair use of the app's queue: no visitor can fill it, hold it, or keep work running after leaving.

Gradio's queue has one global size (``WILDSPACE_QUEUE_SIZE``): it protects the service, but
one visitor joining it a hundred times (without even listening for the answers) would fill it
for everyone. :class:`FairUse` wraps the queue's ``push`` so that one visitor has at most
``waiting_per_visitor`` named requests (and a few more UI refreshes) waiting or running; more are
refused with a clear message. Inside handlers, :meth:`FairUse.heavy` admits at most
``heavy_per_visitor`` batch / video / training requests of one visitor at a time, and
:class:`Watch` stops a run when it passes ``request_seconds`` or its client has gone.

A visitor is their Hugging Face login, else the ``X-Wildspace-Token`` header they send (API and
MCP callers), else their network address (behind ``trusted_proxies`` proxies, the address the
last trusted proxy saw).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Iterator, Mapping

import gradio as gr

from wildspace.settings.guards import Guards

if TYPE_CHECKING:
    from gradio.queueing import Queue

TOKEN_HEADER = "x-wildspace-token"
UI_EVENTS_PER_VISITOR = 24  # page loads, timers, dropdown changes: cheap, but they fill the queue too


def visitor_key(headers: Mapping[str, str], client_host: str | None, username: str | None,
                trusted_proxies: int = 0) -> str:
    """Who is asking, for fair use (not for ownership: see :mod:`wildspace.ui.identity`)."""
    if username:
        return f"hf:{username}"
    token = headers.get(TOKEN_HEADER)
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    forwarded = [h.strip() for h in (headers.get("x-forwarded-for") or "").split(",") if h.strip()]
    if trusted_proxies > 0 and forwarded:
        return "ip:" + forwarded[max(0, len(forwarded) - trusted_proxies)]
    return f"ip:{client_host or 'unknown'}"


def request_visitor(request, trusted_proxies: int = 0) -> str:
    """:func:`visitor_key` of a ``gr.Request`` or a ``fastapi.Request``."""
    if request is None:
        return "ip:unknown"
    headers = {k.lower(): v for k, v in dict(request.headers or {}).items()}
    client = getattr(request, "client", None)
    host = getattr(client, "host", None) if client is not None else None
    return visitor_key(headers, host, getattr(request, "username", None), trusted_proxies)


class RequestStopped(gr.Error):
    """A run stopped because of its time limit or because its client left."""


class FairUse:
    """Per-visitor admission for one Gradio app (see the module docstring)."""

    def __init__(self, guards: Guards):
        self.guards = guards
        self._lock = threading.Lock()
        self._heavy: Counter[str] = Counter()
        self._queue: Queue | None = None

    # -- the Gradio queue ----------------------------------------------------------------
    def install(self, demo: gr.Blocks) -> None:
        """Wrap ``demo``'s queue (call after ``demo.queue(...)``, before or after launch)."""
        queue = demo._queue
        self._queue = queue
        original = queue.push
        fair = self

        async def push(body, request, username):
            key = request_visitor_fastapi(request, username, fair.guards.trusted_proxies)
            named = fair._is_named(demo, body)
            waiting = fair._count(key, named)
            cap = fair.guards.waiting_per_visitor if named else UI_EVENTS_PER_VISITOR
            if waiting >= cap:
                return (False, f"You already have {waiting} requests waiting or running; wait for them to "
                               f"finish (at most {cap} per visitor, WILDSPACE_WAITING_PER_VISITOR).",
                        "queue_full")
            ok, event_id, state = await original(body, request, username)
            if ok:
                event = queue.event_ids_to_events.get(event_id)
                if event is not None:
                    event._wildspace_visitor = key
                    event._wildspace_named = named
            return ok, event_id, state

        queue.push = push  # type: ignore[method-assign]  # wrapping Gradio's queue is the point

    @staticmethod
    def _is_named(demo: gr.Blocks, body) -> bool:
        try:
            fn = demo.fns[body.fn_index]
        except (KeyError, IndexError, TypeError):
            return True
        return getattr(fn, "api_visibility", "public") == "public"

    def _events(self):
        queue = self._queue
        if queue is None:
            return
        for event_queue in list(queue.event_queue_per_concurrency_id.values()):
            yield from list(event_queue.queue)
        for job in list(queue.active_jobs):
            if job:
                yield from [e for e in job if e.alive]

    def _count(self, key: str, named: bool) -> int:
        return sum(1 for e in self._events()
                   if getattr(e, "_wildspace_visitor", None) == key
                   and getattr(e, "_wildspace_named", True) == named)

    def client_gone(self, session_hash: str | None) -> bool:
        """True when the running request of ``session_hash`` was dropped by Gradio (its client
        disconnected or cancelled)."""
        queue = self._queue
        if queue is None or not session_hash:
            return False
        mine = [e for job in list(queue.active_jobs) if job for e in job if e.session_hash == session_hash]
        return bool(mine) and not any(e.alive for e in mine)

    # -- handlers ------------------------------------------------------------------------
    @contextlib.contextmanager
    def heavy(self, request, what: str = "batch") -> Iterator[Watch]:
        """Admit one heavy request of this visitor (refused with a message above the limit);
        yields a :class:`Watch` for its time limit and its client."""
        key = request_visitor(request, self.guards.trusted_proxies)
        with self._lock:
            if self._heavy[key] >= self.guards.heavy_per_visitor:
                raise gr.Error(f"You already have a {what} running here; wait for it to finish "
                               f"(at most {self.guards.heavy_per_visitor} at a time per visitor).")
            self._heavy[key] += 1
        try:
            yield Watch(self, getattr(request, "session_hash", None), self.guards.request_seconds)
        finally:
            with self._lock:
                self._heavy[key] -= 1
                if self._heavy[key] <= 0:
                    del self._heavy[key]


def request_visitor_fastapi(request, username: str | None, trusted_proxies: int) -> str:
    headers = {k.lower(): v for k, v in request.headers.items()} if request is not None else {}
    host = request.client.host if request is not None and request.client is not None else None
    return visitor_key(headers, host, username, trusted_proxies)


class Watch:
    """A running request's limits: call :meth:`check` often (e.g. from progress callbacks)."""

    def __init__(self, fair: FairUse | None, session_hash: str | None, seconds: float):
        self.fair, self.session_hash = fair, session_hash
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RequestStopped(f"Stopped: this request ran longer than {self.seconds:g} s "
                                 "(WILDSPACE_REQUEST_SECONDS). Split the upload, or use the worker queue.")
        if self.fair is not None and self.fair.client_gone(self.session_hash):
            raise RequestStopped("Stopped: the page that asked for this closed.")


def unwatched(guards: Guards | None = None) -> Watch:
    """A :class:`Watch` with only the time limit (no app around it; tests and helpers)."""
    return Watch(None, None, (guards or Guards()).request_seconds)


class AppGuard:
    """What the app's handlers check: fair use (:class:`FairUse`) and disk (``DiskBudget``)."""

    def __init__(self, fair: FairUse, disk):
        self.fair = fair
        self.disk = disk  # wildspace.runs.disk.DiskBudget

    @contextlib.contextmanager
    def heavy(self, request, owner: str, paths, what: str = "batch",
              extensions: frozenset[str] | None = None) -> Iterator[Watch]:
        """One heavy request: admitted by :meth:`FairUse.heavy`, then by the disk quotas for
        what its upload will write (``DiskFull``, a user error, otherwise)."""
        from wildspace.media.images import IMAGE_EXTENSIONS
        from wildspace.runs.disk import DiskFull, upload_need

        with self.fair.heavy(request, what) as watch:
            try:
                self.disk.admit(owner, upload_need(paths or [], extensions or IMAGE_EXTENSIONS))
            except DiskFull:
                self.disk.discard(paths or [])  # a refused upload is not kept
                raise
            yield watch

    def check_jobs(self, queue, owner: str) -> None:
        """Refuse a new queued job while this owner has ``jobs_per_visitor`` unfinished ones."""
        cap = self.fair.guards.jobs_per_visitor
        busy = [s for s in queue.store.list(owner) if s.state in ("queued", "running")]
        if len(busy) >= cap:
            raise gr.Error(f"You already have {len(busy)} queued jobs that are not finished; wait for them "
                           f"or cancel one in the Jobs tab (at most {cap} per visitor, WILDSPACE_JOBS_PER_VISITOR).")
