"""An image input that hands handlers the uploaded file untouched.

``gr.Image`` decodes every upload with PIL before the handler runs (to re-save it in a
format): a truncated or non-image file then fails inside Gradio with an opaque "could not
preprocess" error, and a decompression bomb is decoded with only PIL's own limit. With
:class:`SafeImage` the handler receives the path of the uploaded file and reads it with
:func:`wildspace.media.images.load_image` (pixel limit, clear reasons). The browser sees an
ordinary image component.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import gradio as gr


class SafeImage(gr.Image):
    """``gr.Image(type="filepath")`` without server-side decoding of the upload (handlers always
    get a path, whatever ``type`` says; keep ``type="filepath"`` so the API schema says so).

    Gradio reads a component's props from its ``__init__`` signature, so this class does not
    define one."""

    def get_block_name(self) -> str:
        """Rendered by the frontend's ``image`` component."""
        return "image"

    def get_block_class(self) -> str:
        return "image"

    def preprocess(self, payload) -> str | None:
        """The uploaded file's path in Gradio's upload cache (Gradio has checked it is there)."""
        if payload is None:
            return None
        return str(payload.path)


def image_file(image, folder: Path, stem: str = "image", quality: int = 90) -> str:
    """Save an RGB array or PIL image as a JPEG with a unique name in ``folder``; its path.

    Handlers return image *files*, not arrays: Gradio caches an array under a name derived
    from its content and rewrites that file in place, so two users getting the same picture
    at once could be served a half-written file. Files are copied into its cache atomically.
    """
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(image, dtype=np.uint8)) if not isinstance(image, Image.Image) else image
    fd, path = tempfile.mkstemp(dir=folder, prefix=f"{stem}-", suffix=".jpg")
    with os.fdopen(fd, "wb") as f:
        im.convert("RGB").save(f, "JPEG", quality=quality)
    return path
