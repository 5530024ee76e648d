"""``/dockyard/v1/openapi.json``: the OpenAPI 3 description of the whole HTTP API.

The document is ``openapi.yaml`` beside this module (package data), read and
rendered as JSON once, when the application is built. Below an ``http.prefix`` its
``servers`` names the prefix, so tools that read it send requests where the routes are.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

__all__ = ["OPENAPI_PATH", "document", "openapi_handler"]

#: Where the document is served, below ``http.prefix``.
OPENAPI_PATH = "/dockyard/v1/openapi.json"


def document() -> dict[str, Any]:
    """The OpenAPI document as shipped (paths relative to ``http.prefix``)."""
    text = resources.files("dockyard.api").joinpath("openapi.yaml").read_text("utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def openapi_handler(prefix: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The GET/HEAD handler serving the document for routes below ``prefix``."""
    doc = document()
    if prefix.strip("/"):
        doc["servers"] = [{"url": "/" + prefix.strip("/")}]
    body = json.dumps(doc, separators=(",", ":")).encode()

    async def get_openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return get_openapi
