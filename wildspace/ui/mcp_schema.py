"""MCP tool schemas that MCP clients can validate.

Gradio describes a multi-file input (``gr.File(file_count="multiple")``) with a ``$defs`` block
inside the parameter and a ``$ref`` to ``#/$defs/FileData``, which points at the root of the
tool's schema, where nothing is defined: the MCP server's own argument validation then fails
every call with ``PointerToNowhere`` (the ``detect_batch`` and ``detect_video`` tools could never
run), and the file positions it records for converting URLs to files are schema paths
(``["file_list", "items"]``) that never equal the argument paths (``["file_list", 0]``), so list
items were never converted. :func:`install` makes every tool schema self-contained by inlining
such references and matches list items at any index.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_wildspace_inlined"


def inline_refs(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """A copy of ``schema`` with ``$defs`` blocks dropped and ``#/$defs/NAME`` references
    replaced by the definition (keys already next to the ``$ref`` win)."""
    defs = dict(defs or {})
    if isinstance(schema, list):
        return [inline_refs(x, defs) for x in schema]
    if not isinstance(schema, dict):
        return schema
    defs.update(schema.get("$defs") or {})
    out: dict[str, Any] = {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[len("#/$defs/"):] in defs:
        target = inline_refs(defs[ref[len("#/$defs/"):]], defs)
        out.update({k: v for k, v in target.items() if k != "$ref"})
    for key, value in schema.items():
        if key in ("$defs", "$ref"):
            continue
        out[key] = inline_refs(value, defs)
    return out


def install() -> None:
    """Wrap Gradio's MCP input schemas (once per process; a no-op without the MCP extra)."""
    try:
        from gradio.mcp import GradioMCPServer
    except ImportError:
        return
    original = GradioMCPServer.get_input_schema
    if getattr(original, _PATCHED, False):
        return

    convert = GradioMCPServer.convert_strings_to_filedata

    def get_input_schema(self, tool_name, parameters=None):
        schema, filedata_positions = original(self, tool_name, parameters)
        return inline_refs(schema), [[ANY if k == "items" else k for k in p] for p in filedata_positions]

    def convert_strings_to_filedata(self, value, filedata_positions):
        exact = [p for p in filedata_positions if ANY not in p]
        return convert(self, expand_positions(value, filedata_positions, exact), exact)

    setattr(get_input_schema, _PATCHED, True)
    # patching Gradio's MCP server in place is the point of this module
    GradioMCPServer.get_input_schema = get_input_schema  # type: ignore[method-assign]
    GradioMCPServer.convert_strings_to_filedata = convert_strings_to_filedata  # type: ignore[method-assign]


ANY = "*"  # a list index in a file position


def expand_positions(value: Any, positions: list[list], out: list[list]) -> Any:
    """Append to ``out`` the concrete argument paths of ``value`` that match ``positions``
    (``*`` matches any list index); returns ``value`` unchanged."""

    def walk(node: Any, path: list) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])
        elif isinstance(node, str):
            for p in positions:
                if len(p) == len(path) and all(a == b or (a == ANY and isinstance(b, int)) for a, b in zip(p, path)):
                    out.append(path)
                    return

    walk(value, [])
    return value
