"""Who is asking: the owner of jobs, galleries, feedback and trained models.

In order:

1. a Hugging Face login (OAuth on a Space): ``hf:<username>``;
2. a browser token: the server makes a random id and signs it with a key that never leaves the
   server (HMAC-SHA256); the browser keeps the signed token in its local storage so jobs survive
   reloads and restarts. A token the server did not sign is replaced by a new one, so a client
   cannot choose whose jobs it sees;
3. an ``X-Wildspace-Token`` header (API and MCP callers choose a long random secret; only its hash
   is kept): ``token:<sha256>``;
4. the Gradio session of an API client (random per ``gradio_client.Client``): ``session:<hash>``.

MCP callers all reach the app through one Gradio client, so without a token header they share
one identity; :func:`private_owner` refuses them anything owned (jobs, private galleries).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import gradio as gr

from wildspace.ui.fair_use import TOKEN_HEADER

SHARED_MCP = "mcp:shared"
PUBLIC_STORAGE_KEY = "wildspace-signed-owner-token"  # not a secret: see owner_state
MIN_TOKEN_CHARS = 24
NEED_TOKEN = (f"MCP and API callers must send a header '{TOKEN_HEADER}: <a long random secret of your "
              f"own, at least {MIN_TOKEN_CHARS} characters>' to own jobs, galleries or models; keep it to "
              "see them again.")


def server_secret(home: Path, secret: str | None = None) -> bytes:
    """The key that signs browser tokens (``WILDSPACE_SECRET``, else a file in the data dir)."""
    if secret:
        return secret.encode()
    p = home / "browser-secret"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return p.read_text().strip().encode()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return p.read_text().strip().encode()


def sign(secret: bytes, raw: str) -> str:
    return hmac.new(secret, raw.encode(), hashlib.sha256).hexdigest()[:32]


def new_token(secret: bytes) -> str:
    """A fresh signed browser token ``<id>.<signature>`` (hex: never read as a CLI flag)."""
    raw = secrets.token_hex(16)
    return f"{raw}.{sign(secret, raw)}"


def verified(secret: bytes, token: str | None) -> str | None:
    """The id of a token this server signed, else ``None``."""
    if not isinstance(token, str) or token.count(".") != 1:
        return None
    raw, signature = token.split(".")
    if len(raw) != 32 or not hmac.compare_digest(sign(secret, raw), signature):
        return None
    return raw


def owner_state(home: Path, secret_setting: str | None = None) -> tuple[gr.BrowserState, gr.State, object]:
    """The browser's stored token, the session's verified owner id, and the page-load handler.

    The stored value is not encrypted with a key in the page config (Gradio's ``secret``
    would be readable in ``/config``); it is signed here instead. The session ``gr.State`` is
    server-side: handlers read it, clients cannot set it.
    """
    secret = server_secret(home, secret_setting)
    # Gradio encrypts browser state with a key it puts in the page config; without one it picks
    # a random key per start, and a restart would lose every visitor's token. The token's own
    # HMAC (key kept on the server) is what protects it, so this key is a fixed, public constant.
    stored = gr.BrowserState(None, storage_key="wildspace-owner-v2", secret=PUBLIC_STORAGE_KEY)
    session = gr.State(None)

    def on_load(token):
        raw = verified(secret, token)
        if raw is None:
            token = new_token(secret)
            raw = verified(secret, token)
        return token, raw

    return stored, session, on_load


def owner_of(request: gr.Request | None, token: str | None) -> str:
    """The owner of what this request makes or reads (see the module docstring)."""
    username = getattr(request, "username", None) if request is not None else None
    if username:
        return f"hf:{username}"
    if token:
        return f"browser:{token}"
    headers = {k.lower(): v for k, v in dict(getattr(request, "headers", None) or {}).items()}
    header_token = headers.get(TOKEN_HEADER, "")
    if len(header_token) >= MIN_TOKEN_CHARS:
        return "token:" + hashlib.sha256(header_token.encode()).hexdigest()[:32]
    if headers.get("x-gradio-user") == "mcp":
        return SHARED_MCP
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"session:{session}" if session else "anonymous"


def private_owner(request: gr.Request | None, token: str | None) -> str:
    """:func:`owner_of`, refusing identities several callers share (MCP without a token)."""
    owner = owner_of(request, token)
    if owner in (SHARED_MCP, "anonymous"):
        raise gr.Error(NEED_TOKEN)
    return owner


def logged_in(owner: str) -> bool:
    """A Hugging Face account (what a public Space needs for writes)."""
    return owner.startswith("hf:")
