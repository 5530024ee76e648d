"""The application factory: routes, the error envelope, and headers on every response."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

from dockyard.api import base, blobs, listing, manifests, repositories, uploads
from dockyard.api.auth import auth_middleware
from dockyard.api.context import CONTEXT, AppContext
from dockyard.api.errors import ErrorCode, RegistryError, error_response, from_domain
from dockyard.api.openapi import OPENAPI_PATH, openapi_handler
from dockyard.api.requestid import REQUEST_ID, RequestIds
from dockyard.auth import AccessController, AuthChallenge
from dockyard.auth.silly import SillyAccessController
from dockyard.errors import RegistryFault, StorageError
from dockyard.ui import UISettings, ui_routes

__all__ = ["create_app"]

log = logging.getLogger("dockyard.api")

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
REQUEST_IDS = web.AppKey("dockyard.request_ids", RequestIds)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the spec's JSON envelope; never leak a traceback.

    First of all, the request gets its id (:mod:`dockyard.api.requestid`).
    """
    request.app[REQUEST_IDS].assign(request)
    try:
        return await handler(request)
    except Exception as exc:  # failure_response re-raises what has no answer
        return failure_response(request, exc)


def failure_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The error envelope answering what a handler raised; re-raises ``exc`` when there
    is nobody to answer (a client gone) or aiohttp answers it (an HTTP status but 404
    and 405)."""
    if isinstance(exc, RegistryError):
        err = exc
    elif isinstance(exc, RegistryFault):
        err = from_domain(exc)
    elif isinstance(exc, AuthChallenge):
        code = ErrorCode.DENIED if exc.status == 403 else ErrorCode.UNAUTHORIZED
        err = RegistryError(code, exc.detail, message=exc.message, status=exc.status,
                            headers=_challenge_headers(request, exc))
    elif isinstance(exc, StorageError):
        log.error("storage backend failed on %s %s: %s", request.method, request.path, exc)
        err = RegistryError(ErrorCode.UNAVAILABLE, "storage backend failed",
                            headers={"Retry-After": "5"})
    elif isinstance(exc, web.HTTPException):
        if exc.status == 404:
            err = RegistryError(ErrorCode.NOT_FOUND, request.path[:200])
        elif exc.status == 405:
            err = RegistryError(ErrorCode.UNSUPPORTED, f"{request.method} is not supported here")
        else:
            raise exc
    elif isinstance(exc, ConnectionError):
        raise exc  # the client went away (or stopped reading): nobody to answer
    else:
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
        err = RegistryError(ErrorCode.UNKNOWN, "internal error; see the registry log")
    if err.status >= 500 or err.code == ErrorCode.UNKNOWN:
        log.warning("%s %s -> %d %s", request.method, request.path, err.status, err.code.name)
    return error_response(err, with_body=request.method != "HEAD")


def _challenge_headers(request: web.Request, exc: AuthChallenge) -> dict[str, str]:
    """The challenge's headers, without a Basic challenge for a script that says it is one.

    A 401 with ``WWW-Authenticate: Basic`` makes a browser show its own login dialog,
    even for a ``fetch`` from a page; the web UI (which has its own login form) sends
    ``X-Requested-With: XMLHttpRequest``, as many web frameworks do, and is answered
    without that header. Bearer challenges are kept: they open no dialog and the UI
    needs their realm and scope.
    """
    headers = dict(exc.headers)
    challenge = headers.get("WWW-Authenticate", "")
    if request.headers.get("X-Requested-With") and challenge.lower().startswith("basic"):
        del headers["WWW-Authenticate"]
    return headers


def _ui_settings(ctx: AppContext) -> UISettings:
    access: AccessController | None = ctx.access
    auth: Literal["none", "basic", "token"] = "none"
    realm = service = ""
    # Imported only when that auth is on (and so loaded already): the htpasswd module
    # loads bcrypt (0.7 MiB), the token module jwt and cryptography (several MiB), in
    # every process.
    if access is not None:
        from dockyard.auth.htpasswd import HtpasswdAccessController

        if isinstance(access, HtpasswdAccessController):
            auth = "basic"
        else:
            from dockyard.auth.token import TokenAccessController

            if isinstance(access, TokenAccessController | SillyAccessController):
                auth = "token"
                realm, service = access.realm, access.service
    return UISettings(
        prefix=ctx.urls.prefix,
        delete_enabled=ctx.namespace.options.delete_enabled,
        auth=auth,
        realm=realm,
        service=service,
    )


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers["X-Request-Id"] = rid
    for name, values in request.app[CONTEXT].headers.items():
        for value in values:
            response.headers.add(name, value)


#: Makes the error middleware from the request-id assigner and :func:`failure_response`
#: (the request metrics' counting one, :func:`dockyard.metrics.http.metrics_middleware`).
ErrorsFactory = Callable[
    [Callable[[web.Request], object], Callable[[web.Request, Exception], web.StreamResponse]],
    Middleware,
]


def create_app(ctx: AppContext, errors: ErrorsFactory | None = None) -> web.Application:
    """An aiohttp application serving the registry described by ``ctx``; ``errors``
    makes its error middleware (one that also counts requests), else the plain one."""
    ids = RequestIds()
    first = error_middleware if errors is None else errors(ids.assign, failure_response)
    app = web.Application(middlewares=[first, auth_middleware])
    app[CONTEXT] = ctx
    app[REQUEST_IDS] = ids
    app.on_response_prepare.append(_add_headers)
    v2 = ctx.urls.prefix.rstrip("/") + "/v2"
    name = "{name:.+}"
    router = app.router
    router.add_get(f"{v2}/", base.api_version)
    router.add_get(v2, base.api_version)
    router.add_get(f"{v2}/_catalog", listing.catalog)
    # aiohttp tries these patterns in this order, a regular expression each: the most
    # frequent requests (blob HEAD and GET, then manifests) first; a blob HEAD found
    # at the first try costs 4 us to route instead of 9. Their tails are fixed and no
    # parameter holds a "/", so a path matches one pattern at most: order is no rule.
    blob = f"{v2}/{name}/blobs/{{digest}}"
    router.add_get(blob, blobs.get_blob)
    router.add_delete(blob, blobs.delete_blob)
    manifest = f"{v2}/{name}/manifests/{{reference}}"
    router.add_get(manifest, manifests.get_manifest)
    router.add_put(manifest, manifests.put_manifest)
    router.add_delete(manifest, manifests.delete_manifest)
    upload = f"{v2}/{name}/blobs/uploads/{{uuid}}"
    router.add_get(upload, uploads.upload_status, allow_head=False)
    router.add_patch(upload, uploads.patch_upload)
    router.add_put(upload, uploads.finish_upload)
    router.add_delete(upload, uploads.cancel_upload)
    router.add_post(f"{v2}/{name}/blobs/uploads/", uploads.start_upload)
    router.add_get(f"{v2}/{name}/tags/list", listing.tags_list)
    router.add_get(f"{v2}/{name}/referrers/{{digest}}", listing.referrers)
    # dockyard's own API: the access control of /v2/ (auth.required_accesses).
    prefix = ctx.urls.prefix.rstrip("/")
    router.add_get(prefix + OPENAPI_PATH, openapi_handler(ctx.urls.prefix))
    owned = prefix + repositories.REPOSITORIES_PATH
    if ctx.namespace.index is not None:  # usage is answered from the index only
        router.add_get(owned, repositories.list_repositories)
        router.add_get(f"{owned}/{name}", repositories.repository_usage)
    router.add_delete(f"{owned}/{name}", repositories.delete_repository)
    if ctx.ui_enabled:
        routes, relay = ui_routes(_ui_settings(ctx))
        router.add_routes(routes)
        if relay is not None:
            app.on_cleanup.append(relay.close)
    return app
