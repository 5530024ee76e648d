"""dockyard's repository API: ``/dockyard/v1/repositories[/<name>]``.

``GET .../repositories?n=&last=`` lists repositories with their usage, paged as
``_catalog`` is (same ``n`` limit, ``Link`` to the next page) and with its access
(``registry:catalog:*``); ``GET .../repositories/<name>`` is one repository's usage
(``pull``); ``DELETE`` removes the whole repository (``delete``; refused unless
``storage.delete.enabled``, as manifest deletes are).
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from dockyard.api.context import context
from dockyard.api.listing import page_size
from dockyard.api.params import repository
from dockyard.api.urls import dockyard_url

__all__ = ["REPOSITORIES_PATH", "delete_repository", "list_repositories", "repository_usage"]

REPOSITORIES_PATH = "/dockyard/v1/repositories"


async def list_repositories(request: web.Request) -> web.Response:
    ctx = context(request)
    n = page_size(request, ctx.catalog_max_entries)
    assert n is not None
    last = request.query.get("last", "")
    usages, more = await ctx.namespace.usages(n, last)
    headers = {}
    if more and usages:
        url = dockyard_url(request, "repositories")
        if ctx.urls.relative:
            url = url[url.index("/dockyard/") :]
        query = urlencode({"last": usages[-1].name, "n": str(n)})
        headers["Link"] = f'<{url}?{query}>; rel="next"'
    body = {"repositories": [u.as_json() for u in usages]}
    return web.json_response(body, headers=headers)


async def repository_usage(request: web.Request) -> web.Response:
    return web.json_response((await repository(request).usage()).as_json())


async def delete_repository(request: web.Request) -> web.Response:
    await repository(request).delete()
    return web.Response(status=202)
