"""The UI's routes: a redirect, the static pages, their settings and the token relay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from dockyard.ui.relay import TokenRelay

__all__ = ["PUBLIC_ROUTE_PREFIX", "UISettings", "ui_routes"]

#: Every UI route's name starts with this: the access control of ``/v2/`` skips them.
PUBLIC_ROUTE_PREFIX = "ui."

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
}
# The pages are this server's only HTML: nothing else may frame them or run scripts
# from elsewhere; data requests go to this origin only.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class UISettings:
    """What the UI must know of the server it runs on."""

    prefix: str = "/"
    delete_enabled: bool = False
    auth: Literal["none", "basic", "token"] = "none"
    realm: str = ""
    """``auth.token.realm``: where the token relay asks for tokens."""
    service: str = ""


def _assets() -> dict[str, Path]:
    """The files the UI serves, by name (read once: the package's files do not change)."""
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in _TYPES}


def ui_routes(settings: UISettings) -> tuple[list[web.RouteDef], TokenRelay | None]:
    """The UI's routes under ``settings.prefix``, and the relay to close on shutdown."""
    base = settings.prefix.rstrip("/")
    ui = f"{base}/ui/"
    assets = _assets()
    config = json.dumps(
        {"prefix": base + "/", "delete": settings.delete_enabled, "auth": settings.auth}
    )

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(ui)

    async def asset(request: web.Request) -> web.StreamResponse:
        path = assets.get(request.match_info.get("asset") or "index.html")
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(
            path, headers={**_HEADERS, "Content-Type": _TYPES[path.suffix] + "; charset=utf-8"}
        )

    async def ui_config(request: web.Request) -> web.StreamResponse:
        return web.Response(text=config, content_type="application/json", headers=_HEADERS)

    routes = [
        web.get(base + "/", redirect, name=PUBLIC_ROUTE_PREFIX + "root"),
        web.get(base + "/ui", redirect, name=PUBLIC_ROUTE_PREFIX + "bare"),
        web.get(ui, asset, name=PUBLIC_ROUTE_PREFIX + "index"),
        web.get(ui + "config.json", ui_config, name=PUBLIC_ROUTE_PREFIX + "config"),
    ]
    relay = None
    if settings.auth == "token":
        relay = TokenRelay(settings.realm, settings.service)
        routes.append(web.get(ui + "token", relay.handle, name=PUBLIC_ROUTE_PREFIX + "token"))
    routes.append(web.get(ui + "{asset}", asset, name=PUBLIC_ROUTE_PREFIX + "asset"))
    return routes, relay
