"""The routes of dockyard's aiohttp router, for tests that must cover every one.

The application is built in-process on the in-memory driver only to read its router;
no request is served from it.
"""

from __future__ import annotations

from dockyard.api.app import create_app
from dockyard.api.context import AppContext
from dockyard.api.state import UploadStateSigner
from dockyard.index import SqlIndex
from dockyard.index.sqlite import MEMORY, SqliteDatabase
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage.drivers.factory import create_driver

__all__ = ["router_routes"]


def router_routes() -> set[tuple[str, str]]:
    """Every ``(METHOD, path template)`` the router answers.

    For example ``("GET", "/v2/{name}/tags/list")``.
    """
    # With the metadata index, as the default configuration runs (more routes).
    index = SqlIndex(SqliteDatabase(MEMORY))
    namespace = Namespace(create_driver("inmemory", {}), RegistryOptions(), index=index)
    app = create_app(AppContext(namespace=namespace, signer=UploadStateSigner(b"routes")))
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
