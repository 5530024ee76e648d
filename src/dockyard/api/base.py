"""``/v2/``: the API version check clients probe first."""

from __future__ import annotations

from aiohttp import web

__all__ = ["api_version"]


async def api_version(request: web.Request) -> web.Response:
    return web.json_response({})
