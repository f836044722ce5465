"""On a public Space the app offers a Hugging Face login (gallery writes need it)."""

from __future__ import annotations

import dataclasses

import gradio as gr


def _login_buttons(demo) -> list:
    return [b for b in demo.blocks.values() if isinstance(b, gr.LoginButton)]


def test_login_button_only_on_a_public_space(tmp_path, monkeypatch):
    from wildspace.services.detectors import DetectorService
    from wildspace.settings import load_settings
    from wildspace.ui.app import build_app

    settings = load_settings()
    local = build_app(DetectorService(settings), tmp_path / "a")
    assert _login_buttons(local) == []
    # what a Space with hf_oauth provides (nothing is contacted while building)
    for key, value in {"SYSTEM": "spaces", "SPACE_ID": "org/wildspace", "OAUTH_CLIENT_ID": "id",
                       "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile",
                       "OPENID_PROVIDER_URL": "https://huggingface.co"}.items():
        monkeypatch.setenv(key, value)
        monkeypatch.setattr(gr.oauth, key, value, raising=False)  # read at gradio's import
    space = build_app(DetectorService(dataclasses.replace(settings, public_space=True)), tmp_path / "b")
    assert len(_login_buttons(space)) == 1
