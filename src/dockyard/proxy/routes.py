"""Which repositories are caches of which upstream, and what the client is told.

With ``proxy.remoteurl`` one :class:`Upstream` with an empty prefix caches every
repository. With ``proxy.upstreams`` each upstream owns ``<prefix>/...``; other
names are hosted. containerd's mirror query ``?ns=<namespace>`` on a name without
a prefix selects the upstream with that namespace. A response served from the
cache because the upstream could not be asked carries a ``Warning`` header.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from dockyard.proxy.remote import RemoteRegistry

__all__ = ["STALE_WARNING", "Upstream", "mark_stale", "proxy_middleware", "warn_if_stale"]

# RFC 7234's warn-code 110: what is served is the cached copy, not revalidated.
STALE_WARNING = '110 - "Response is Stale"'
# Docker Hub's registry hosts: there "alpine" means "library/alpine".
_DOCKER_HUB = frozenset(
    {"registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"}
)
# Set while a request is answered from the cache in place of the upstream. A task
# serves a connection's requests in turn, so the middleware resets it each time.
_stale: contextvars.ContextVar[bool] = contextvars.ContextVar("dockyard_proxy_stale")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream registry and the repositories that are its cache."""

    prefix: str
    """Empty: every repository (``proxy.remoteurl``)."""
    remote: RemoteRegistry
    ttl: float
    namespace: str = ""

    def owns(self, name: str) -> bool:
        return not self.prefix or name.startswith(f"{self.prefix}/")

    def remote_name(self, name: str) -> str:
        """The upstream's name for the local repository ``name``."""
        remote = name[len(self.prefix) + 1 :] if self.prefix else name
        if self.is_docker_hub and "/" not in remote:
            return f"library/{remote}"
        return remote

    @property
    def is_docker_hub(self) -> bool:
        """Docker Hub by its host, or by the namespace containerd sends for it (a mirror
        of the Hub, such as another pull-through cache, names its images the same way)."""
        host = urlsplit(self.remote.url).hostname or ""
        return host in _DOCKER_HUB or self.namespace == "docker.io"


def route(upstreams: Sequence[Upstream], name: str) -> Upstream | None:
    """The upstream whose cache ``name`` is; None for a hosted repository."""
    for upstream in upstreams:
        if upstream.owns(name):
            return upstream
    return None


def mark_stale() -> None:
    """This request is answered from the cache because the upstream failed."""
    _stale.set(True)


def proxy_middleware(upstreams: Sequence[Upstream]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Route ``?ns=`` to its upstream's prefix; start each request fresh (not stale)."""
    by_namespace = {u.namespace: u for u in upstreams if u.namespace and u.prefix}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        _stale.set(False)
        name = request.match_info.get("name")
        upstream = by_namespace.get(request.query.get("ns", ""))
        if name is not None and upstream is not None and route(upstreams, name) is None:
            request.match_info["name"] = f"{upstream.prefix}/{name}"
        return await handler(request)

    return middleware


async def warn_if_stale(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the ``Warning`` of a response served from a stale cache."""
    if _stale.get(False):
        response.headers["Warning"] = STALE_WARNING
