"""Who is asking: the owner of jobs (and later feedback and galleries).

A Hugging Face login (OAuth on a Space) wins; otherwise a random token kept in the browser's
local storage (so jobs survive reloads and app restarts); otherwise the Gradio session (API
clients without a browser)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import gradio as gr


def browser_secret(home: Path) -> str:
    """The key that encrypts the browser token; kept in the data dir so it survives restarts."""
    if os.environ.get("WILDSPACE_SECRET"):
        return os.environ["WILDSPACE_SECRET"]
    p = home / "browser-secret"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return p.read_text().strip()


def owner_state(home: Path) -> tuple[gr.BrowserState, gr.State, object]:
    """A per-session state holding the browser's owner token.

    The token lives in the browser's local storage (encrypted); on page load it is copied
    into a session ``gr.State``, which handlers read. States are not API parameters, so an
    API caller cannot claim someone else's token: API sessions own their jobs by session.
    """
    stored = gr.BrowserState(None, storage_key="wildspace-owner", secret=browser_secret(home))
    session = gr.State(None)

    def on_load(token):
        token = token or secrets.token_hex(16)  # hex: never read as a CLI flag
        return token, token

    return stored, session, on_load


def owner_of(request: gr.Request | None, token: str | None) -> str:
    username = getattr(request, "username", None) if request is not None else None
    if username:
        return f"hf:{username}"
    if token:
        return f"browser:{token}"
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"session:{session}" if session else "anonymous"
