"""The token relay: the UI's token requests, forwarded to the configured realm.

With ``auth: token`` the registry's challenge names a realm that is usually another
origin (dockyard's ``token-server`` on its own port, or a third-party issuer), which
a browser may call only if that server answers CORS preflights. The relay makes the
realm reachable from the UI's own origin instead: ``GET <prefix>/ui/token?scope=..``
is sent on, with the browser's ``Authorization`` header, to ``auth.token.realm`` with
``service`` set, and the issuer's JSON answer comes back. It never talks to any other
URL, forwards no other header, and drops the issuer's ``WWW-Authenticate: Basic``, so a
wrong password is told to the UI's login form, not to the browser's own dialog.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

__all__ = ["TokenRelay"]

log = logging.getLogger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=30)
_MAX_BODY = 64 * 1024  # a token response is a few KiB
_MAX_SCOPES = 16


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"errors": [{"code": code, "message": message, "detail": None}]}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


class TokenRelay:
    """Forwards ``GET /ui/token`` to ``realm`` (one HTTP client, closed by :meth:`close`)."""

    def __init__(self, realm: str, service: str) -> None:
        self.realm = realm
        self.service = service
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Relay one token request; the realm's status and JSON body come back as they are."""
        scopes = request.query.getall("scope", [])
        if len(scopes) > _MAX_SCOPES:
            return _error(400, "INVALID_REQUEST", f"at most {_MAX_SCOPES} scopes")
        params = [("service", self.service), *(("scope", s) for s in scopes)]
        headers = {}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with self._client().get(
                self.realm, params=params, headers=headers, allow_redirects=False
            ) as answer:
                body = await answer.content.read(_MAX_BODY + 1)
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ui token relay: %s unreachable: %s", self.realm, exc)
            return _error(502, "UNAVAILABLE", "the token realm is unreachable")
        if len(body) > _MAX_BODY or status not in (200, 400, 401, 403):
            log.warning("ui token relay: unexpected answer from %s (%d)", self.realm, status)
            return _error(502, "UNAVAILABLE", "the token realm gave an unexpected answer")
        return web.Response(
            body=body,
            status=status,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def close(self, app: web.Application) -> None:
        """Close the HTTP client (an ``on_cleanup`` hook)."""
        if self._session is not None:
            await self._session.close()
