"""With the MCP extra installed the app's functions are MCP tools."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp", reason="gradio[mcp] extra not installed")


def test_mcp_lists_the_detection_tools(app_service, tmp_path):
    import httpx

    from wildspace.ui.app import build_app, mcp_available

    assert mcp_available()
    demo = build_app(app_service, tmp_path / "out")
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        r = httpx.post(demo.local_url + "gradio_api/mcp/", timeout=60,
                       headers={"Accept": "application/json, text/event-stream"},
                       json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
        assert r.status_code == 200
        for name in ("detect_image", "detect_batch", "detect_video"):
            assert f'"name":"{name}"' in r.text.replace(" ", "")
    finally:
        demo.close()
