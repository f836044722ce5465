"""Official schemas answered offline: a ``requests`` session that serves the bundled verbatim
copies (``schemas/SOURCES.md`` says where each comes from) for the URLs the Camtrap DP 1.0.2
profile and table schemas name, and refuses every other URL without touching the network.

frictionless fetches profiles, table schemas and their ``$ref`` through
``frictionless.system.http_session``; :func:`offline_session` is that session."""

from __future__ import annotations

import io
from pathlib import Path

import requests
from requests.adapters import BaseAdapter
from urllib3.response import HTTPResponse

SCHEMAS = Path(__file__).parent / "schemas"
_CAMTRAP = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/"
BUNDLED: dict[str, str] = {
    **{_CAMTRAP + name: f"camtrap-dp/1.0.2/{name}" for name in (
        "camtrap-dp-profile.json", "deployments-table-schema.json", "media-table-schema.json",
        "observations-table-schema.json")},
    "https://specs.frictionlessdata.io/schemas/data-package.json": "frictionless-specs/data-package.json",
    "http://json.schemastore.org/geojson.json": "schemastore/geojson.json",
    "https://json.schemastore.org/geojson.json": "schemastore/geojson.json",
    "https://geojson.org/schema/GeoJSON.json": "geojson-org/GeoJSON.json",
}


def bundled_path(url: str) -> Path | None:
    """The bundled file answering ``url`` (fragment ignored), or None."""
    rel = BUNDLED.get(url.split("#", 1)[0])
    return SCHEMAS / rel if rel else None


class BundledAdapter(BaseAdapter):
    """Answers bundled URLs from disk; anything else is a 404 saying it is not bundled."""

    def send(self, request, **kwargs):  # noqa: D401 - requests' adapter interface
        path = bundled_path(request.url)
        body = path.read_bytes() if path is not None else b""
        raw = HTTPResponse(body=io.BytesIO(body), preload_content=False,
                           status=200 if path is not None else 404,
                           headers={"Content-Type": "application/json"})
        resp = requests.Response()
        resp.status_code = raw.status
        resp.reason = "OK" if path is not None else "not bundled (offline validation)"
        resp.raw, resp.url, resp.request = raw, request.url, request
        resp.headers.update(raw.headers)
        return resp

    def close(self) -> None:
        pass


def offline_session() -> requests.Session:
    """A session that never opens a socket: bundled schemas or 404."""
    s = requests.Session()
    s.trust_env = False
    adapter = BundledAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
