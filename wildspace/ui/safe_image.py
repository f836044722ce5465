"""An image input that hands handlers the uploaded file untouched.

``gr.Image`` decodes every upload with PIL before the handler runs (to re-save it in a
format): a truncated or non-image file then fails inside Gradio with an opaque "could not
preprocess" error, and a decompression bomb is decoded with only PIL's own limit. With
:class:`SafeImage` the handler receives the path of the uploaded file and reads it with
:func:`wildspace.media.images.load_image` (pixel limit, clear reasons). The browser sees an
ordinary image component.
"""

from __future__ import annotations

import gradio as gr


class SafeImage(gr.Image):
    """``gr.Image(type="filepath")`` without server-side decoding of the upload."""

    is_template = True  # rendered by the frontend's ``image`` component

    def __init__(self, *args, **kwargs):
        kwargs["type"] = "filepath"
        super().__init__(*args, **kwargs)

    def preprocess(self, payload) -> str | None:
        """The uploaded file's path in Gradio's upload cache (Gradio has checked it is there)."""
        if payload is None:
            return None
        return str(payload.path)
