"""A dropdown whose API accepts values that are not (yet) among its choices.

``gr.Dropdown`` describes its API parameter as an ``enum`` of the choices it had when the app
was built. For pickers whose values appear later (job ids, galleries created in the app), that
enum is empty or stale, and MCP clients, which validate arguments against the schema, reject
every real value. With ``allow_custom_value=True`` this dropdown's API is a plain string (the
choices are listed in the description instead); the browser sees an ordinary dropdown.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


class FreeDropdown(gr.Dropdown):
    """``gr.Dropdown`` with a free-text API when ``allow_custom_value`` is set.

    Gradio reads a component's props from its ``__init__`` signature, so this class does not
    define one."""

    def get_block_name(self) -> str:
        """Rendered by the frontend's ``dropdown`` component."""
        return "dropdown"

    def get_block_class(self) -> str:
        return "dropdown"

    def api_info(self) -> dict[str, Any]:
        if not self.allow_custom_value or self.multiselect:
            return super().api_info()
        return {"type": "string"}
