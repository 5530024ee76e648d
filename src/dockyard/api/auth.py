"""Access control glue: which access each request needs, asked of the configured controller.

As distribution's ``app.go``: GET/HEAD need ``pull``, POST/PUT/PATCH ``pull,push``,
DELETE ``delete`` on the repository in the path (``/dockyard/v1/repositories/<name>``
too); the catalog and ``/dockyard/v1/repositories`` need ``registry:catalog:*``;
``/v2/`` and dockyard's own ``/dockyard/v1/openapi.json`` need only a valid identity;
the web UI's pages (routes named ``ui.*``) need nothing, since the data they show
comes from ``/v2/`` with the user's own credentials. tests/auth/test_route_access.py
holds the table of every route's access and tries each against a real server. A mount's source is
checked by the upload handler against the grant, so a missing ``pull`` there
falls back to a normal upload instead of failing the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard.api.context import context
from dockyard.auth import Access, Grant
from dockyard.ui import PUBLIC_ROUTE_PREFIX

__all__ = ["GRANT", "auth_middleware", "may_read", "may_read_anywhere", "required_accesses"]

GRANT = web.RequestKey("dockyard.grant", Grant)
# Without access control every request may do everything.
_OPEN = Grant(subject=None, unrestricted=True)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ACTIONS = {
    "GET": ("pull",),
    "HEAD": ("pull",),
    "POST": ("pull", "push"),
    "PUT": ("pull", "push"),
    "PATCH": ("pull", "push"),
    "DELETE": ("delete",),
}


def required_accesses(request: web.Request) -> list[Access]:
    """The accesses ``request`` needs, from its route and method."""
    name = request.match_info.get("name")
    if name is not None:
        return [Access("repository", name, a) for a in _ACTIONS.get(request.method, ("pull",))]
    path = request.path.rstrip("/")
    if path.endswith("/_catalog") or path.endswith("/dockyard/v1/repositories"):
        return [Access("registry", "catalog", "*")]
    return []


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authorize before the handler runs; AuthChallenge becomes a 401/403 upstream."""
    controller = context(request).access
    route = request.match_info.route.name or ""
    # The UI's pages are public; the data they show comes through /v2/ as the user.
    public = route.startswith(PUBLIC_ROUTE_PREFIX)
    if controller is None or public or request.match_info.http_exception is not None:
        request[GRANT] = _OPEN
    else:
        request[GRANT] = await controller.authorize(request.headers, required_accesses(request))
    return await handler(request)


def may_read(request: web.Request, repository: str) -> bool:
    """Whether the caller may pull from ``repository`` (for cross-repository mounts)."""
    return request[GRANT].allows(Access("repository", repository, "pull"))


def may_read_anywhere(request: web.Request) -> bool:
    """Whether the caller may take a blob from any repository (a mount without ``from``)."""
    return request[GRANT].unrestricted
