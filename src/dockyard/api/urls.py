"""Location URLs that clients can follow, behind proxies too (distribution's urls.go)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from dockyard.api.context import UrlSettings, context

__all__ = [
    "base_url",
    "base_url_from",
    "blob_url",
    "dockyard_url",
    "manifest_url",
    "upload_url",
    "v2_url",
]


def _base(request: web.Request) -> str:
    """``scheme://host`` (or nothing, for relative URLs) plus the route prefix."""
    return base_url_from(context(request).urls, request.headers, request.scheme, request.host)


def base_url_from(urls: UrlSettings, headers: Mapping[str, str], scheme: str, host: str) -> str:
    """:func:`base_url` from what it reads of a request (kept, once the request is gone)."""
    prefix = urls.prefix.rstrip("/")
    if urls.relative:
        return prefix
    if urls.host:
        return urls.host.rstrip("/") + prefix
    scheme = headers.get("X-Forwarded-Proto", "").split(",")[0].strip() or scheme
    host = headers.get("X-Forwarded-Host", "").split(",")[0].strip() or host
    return f"{scheme}://{host}{prefix}"


def base_url(request: web.Request) -> str:
    """What ``/v2/...`` URLs for this request start with (``scheme://host/prefix``)."""
    return _base(request)


def v2_url(request: web.Request, path: str) -> str:
    return f"{_base(request)}/v2/{path}"


def dockyard_url(request: web.Request, path: str) -> str:
    """A URL of dockyard's own API (``<prefix>/dockyard/v1/<path>``)."""
    return f"{_base(request)}/dockyard/v1/{path}"


def blob_url(request: web.Request, name: str, digest: str) -> str:
    return v2_url(request, f"{name}/blobs/{digest}")


def manifest_url(request: web.Request, name: str, reference: str) -> str:
    return v2_url(request, f"{name}/manifests/{reference}")


def upload_url(request: web.Request, name: str, upload_id: str, state: str) -> str:
    return v2_url(request, f"{name}/blobs/uploads/{upload_id}?_state={quote(state, safe='')}")
