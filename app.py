"""Start the wildspace Gradio app: ``python app.py`` (also the Hugging Face Space entry point)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

from wildspace.services import DetectorService  # noqa: E402
from wildspace.ui.app import build_app, mcp_available  # noqa: E402


def main() -> None:
    service = DetectorService(device=os.environ.get("WILDSPACE_DEVICE", "cpu"))
    demo = build_app(service)
    demo.queue(default_concurrency_limit=2).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        mcp_server=mcp_available(),  # the same functions become tools for AI assistants
    )


if __name__ == "__main__":
    main()
