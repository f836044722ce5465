"""Build the Gradio Blocks from services (no global model state)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from wildspace.services import DetectorService
from wildspace.ui import single_image

INTRO = """# wildspace
Find animals, people and vehicles in camera-trap photos with MegaDetector and other open models.
Nothing you upload is kept after your session ends."""


def build_app(service: DetectorService, out_dir: Path | None = None) -> gr.Blocks:
    out_dir = out_dir or Path(tempfile.gettempdir()) / "wildspace-app"
    with gr.Blocks(title="wildspace") as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Single image"):
            single_image.build_tab(service, out_dir)
    return demo
