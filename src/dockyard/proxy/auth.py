"""Upstream credentials as distribution's proxy uses them.

The upstream is pinged at ``/v2/``; its ``WWW-Authenticate`` challenge says how
to authenticate: ``Basic`` sends the configured username and password, ``Bearer``
fetches a token from the challenge's realm (with those credentials when set,
anonymously otherwise) for the repository scope, kept until it expires.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import aiohttp

__all__ = ["Challenge", "UpstreamAuth", "parse_challenge"]

# auth-param = token "=" ( token / quoted-string ), RFC 9110 section 11.2.
_PARAM = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
# A token without expires_in lives 60 s (the Docker token spec's default).
_DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little early so a token never expires between check and use.
_EXPIRY_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: the scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The challenge in a ``WWW-Authenticate`` value; None when it names no scheme."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): re.sub(r"\\(.)", r"\1", m.group(2))
        if m.group(2) is not None
        else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


class UpstreamAuth:
    """The ``Authorization`` header for a request to the upstream, per repository scope."""

    def __init__(self, base_url: str, username: str = "", password: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self._basic = aiohttp.BasicAuth(username, password) if username else None
        self._challenge: Challenge | None = None
        self._pinged = False
        self._lock = asyncio.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}

    async def ping(self, session: aiohttp.ClientSession) -> None:
        """Learn the challenge once (again after :meth:`forget`); raises aiohttp errors."""
        async with self._lock:
            if self._pinged:
                return
            async with session.get(f"{self.base_url}/v2/") as response:
                await response.read()
                header = response.headers.get("WWW-Authenticate")
                if response.status == 401 and header:
                    self._challenge = parse_challenge(header)
                else:
                    self._challenge = None
            self._pinged = True

    def forget(self, scope: str) -> None:
        """The upstream refused what was sent: drop the token, ping again next time."""
        self._tokens.pop(scope, None)
        self._pinged = False

    async def header(self, session: aiohttp.ClientSession, scope: str) -> str | None:
        """The Authorization value for ``scope`` (``repository:<name>:pull``, or ``""``)."""
        await self.ping(session)
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic.encode() if self._basic is not None else None
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return None
        cached = self._tokens.get(scope)
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        token, lifetime = await self._fetch_token(session, challenge, scope)
        self._tokens[scope] = (token, time.monotonic() + max(lifetime - _EXPIRY_MARGIN, 1.0))
        return f"Bearer {token}"

    async def _fetch_token(
        self, session: aiohttp.ClientSession, challenge: Challenge, scope: str
    ) -> tuple[str, float]:
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        if scope:
            query.append(("scope", scope))
        async with session.get(
            challenge.params["realm"], params=query, auth=self._basic
        ) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    (),
                    status=response.status,
                    message=f"token endpoint answered {response.status}",
                )
            body = await response.json(content_type=None)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=502, message="token endpoint sent no token"
            )
        expires = body.get("expires_in")
        lifetime = (
            float(expires)
            if isinstance(expires, int | float) and expires > 0
            else (_DEFAULT_TOKEN_LIFETIME)
        )
        return token, lifetime
