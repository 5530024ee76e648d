"""``/dockyard/v1/openapi.json``: the OpenAPI 3 description of the whole HTTP API.

The document is ``openapi.yaml`` beside this module (package data), read and
rendered as JSON once, at the first request for it: parsing it when the application
was built grew every worker's heap by about 1.8 MiB for a page few clients ask for.
Below an ``http.prefix`` its
``servers`` names the prefix, so tools that read it send requests where the routes are.
"""

from __future__ import annotations

import asyncio
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
    rendered: list[bytes] = []

    async def get_openapi(request: web.Request) -> web.Response:
        if not rendered:  # two first requests at once both render it: harmless
            rendered.append(await asyncio.to_thread(_render, prefix))
        return web.Response(body=rendered[0], content_type="application/json")

    return get_openapi


def _render(prefix: str) -> bytes:
    doc = document()
    if prefix.strip("/"):
        doc["servers"] = [{"url": "/" + prefix.strip("/")}]
    return json.dumps(doc, separators=(",", ":")).encode()
