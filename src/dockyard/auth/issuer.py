"""A built-in token issuer for the ``token`` access controller (Docker token specification).

Endpoints (``create_token_app``):

- ``GET /token?service=..&scope=..&scope=..[&account=..][&offline_token=true]``,
  credentials (if any) in ``Authorization: Basic``;
- ``POST /token`` with form fields ``grant_type`` (``password`` or ``refresh_token``),
  ``username``/``password`` or ``refresh_token``, ``service``, ``scope``
  (space separated), ``client_id``, ``access_type=offline`` (as docker's client sends).

Users come from a bcrypt htpasswd file (same rules as the htpasswd controller);
anonymous requests are served only with ``anonymous: true``. What a token grants is the
intersection of the requested scopes and what the ACL allows (default deny): a requested
action the ACL does not allow is simply left out of the token, like docker_auth.

ACL rules are allow rules; a principal gets the union of all rules matching it:

- ``subject``: a user name, ``group:<name>`` (groups from the config), ``*`` (any
  authenticated user) or ``anonymous``. With ``anonymous: true`` the ``anonymous`` rules
  apply to everyone, so logging in never loses access; a user named ``anonymous`` is
  matched only by such rules.
- ``type`` (default ``repository``) and ``repository``: a glob (``fnmatch``, case
  sensitive; ``*`` also crosses ``/``) on the resource name. ``team/*`` matches
  ``team/app`` and ``team/a/b`` but neither ``team`` nor ``other/x``.
- ``actions``: e.g. ``[pull, push]``; ``*`` allows every action, and is the only way to
  be granted an action ``*`` (``registry:catalog:*``).

Tokens are JWTs signed with the configured key, with headers ``kid`` (libtrust key ID)
and ``x5c`` (the certificate chain), and claims iss, sub, aud, exp, nbf, iat, jti,
access. If neither key nor certificate file exists, an EC P-256 key and a self-signed
certificate are generated at first start (key 0600, certificate 0644), so a registry's
``rootcertbundle`` can point at the certificate file.

With ``offline_token=true`` (GET) or ``access_type=offline`` (POST password grant) an
authenticated user also gets a ``refresh_token``: a JWT signed with the same key that
grants nothing by itself, bound to the user's current password hash, so changing the
password revokes it. Passwords and tokens are never logged.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from dockyard.auth._util import parse_basic, quote_param
from dockyard.auth.access import (
    Access,
    format_scope,
    parse_scope,
    resource_actions,
)
from dockyard.auth.htpasswd import HtpasswdFile
from dockyard.auth.issuer_config import (
    SECTION,
    AclRule,
    IssuerConfig,
    granted_accesses,
    load_issuer_config,
    parse_issuer_config,
)
from dockyard.auth.issuer_signing import TokenSigner

__all__ = [
    "AclRule",
    "IssuerConfig",
    "TokenSigner",
    "create_token_app",
    "granted_accesses",
    "load_issuer_config",
    "parse_issuer_config",
    "run_token_issuer",
]

log = logging.getLogger(__name__)

_REFRESH_TYPE = "refresh"


# The application


@dataclass(frozen=True)
class _Issuer:
    cfg: IssuerConfig
    signer: TokenSigner
    users: HtpasswdFile | None

    @property
    def realm(self) -> str:
        return self.cfg.realm or self.cfg.issuer

    @property
    def refresh_audience(self) -> str:
        return f"{self.cfg.issuer}#refresh"


_ISSUER = web.AppKey("dockyard.auth.issuer", _Issuer)


class _Failure(Exception):
    def __init__(self, status: int, code: str, message: str, *, challenge: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.challenge = status, code, message, challenge


def _unauthorized(message: str = "authentication required") -> _Failure:
    return _Failure(401, "UNAUTHORIZED", message, challenge=True)


def _invalid(message: str) -> _Failure:
    return _Failure(400, "INVALID_REQUEST", message)


def _error_response(issuer: _Issuer, failure: _Failure) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if failure.challenge:
        headers["WWW-Authenticate"] = f"Basic realm={quote_param(issuer.realm)}"
    body = {"errors": [{"code": failure.code, "message": failure.message, "detail": None}]}
    return web.json_response(body, status=failure.status, headers=headers)


def _password_fingerprint(hashed: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(hashed).digest()[:16]).decode().rstrip("=")


async def _authenticate(issuer: _Issuer, user: str, password: bytes) -> str:
    if issuer.users is None or not await issuer.users.authenticate(user, password):
        log.info("token issuer: authentication failed for user %r", user)
        raise _unauthorized()
    return user


def _check_service(issuer: _Issuer, service: str | None) -> None:
    if service and service != issuer.cfg.service:
        raise _invalid(f"unknown service {service!r}")


def _parse_scopes(values: Sequence[str]) -> list[Access]:
    requested: list[Access] = []
    for value in values:
        try:
            requested.extend(parse_scope(value))
        except ValueError as exc:
            raise _invalid(str(exc)) from None
    return list(dict.fromkeys(requested))


def _refresh_token(issuer: _Issuer, subject: str, now: int) -> str | None:
    hashed = issuer.users.hash_of(subject) if issuer.users is not None else None
    if hashed is None or issuer.cfg.refresh_expiration <= 0:
        return None
    claims = {
        "iss": issuer.cfg.issuer,
        "sub": subject,
        "aud": issuer.refresh_audience,
        "exp": now + issuer.cfg.refresh_expiration,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "typ": _REFRESH_TYPE,
        "pwh": _password_fingerprint(hashed),
    }
    return issuer.signer.sign(claims, x5c=False)


def _refresh_subject(issuer: _Issuer, token: str) -> str:
    """The user a refresh token was issued to, if it is still valid."""
    try:
        claims = jwt.decode(
            token,
            key=issuer.signer.public_key,
            algorithms=[issuer.signer.algorithm],
            audience=issuer.refresh_audience,
            issuer=issuer.cfg.issuer,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except Exception as exc:  # PyJWTError, or anything else hostile input provokes
        log.info("token issuer: invalid refresh token: %s", exc)
        raise _unauthorized("invalid refresh token") from None
    subject = claims.get("sub")
    hashed = issuer.users.hash_of(subject) if issuer.users and isinstance(subject, str) else None
    if (
        claims.get("typ") != _REFRESH_TYPE
        or hashed is None
        or claims.get("pwh") != _password_fingerprint(hashed)
    ):
        log.info("token issuer: refresh token of %r is no longer valid", subject)
        raise _unauthorized("invalid refresh token")
    assert isinstance(subject, str)
    return subject


def _token_response(
    issuer: _Issuer,
    subject: str | None,
    requested: Sequence[Access],
    *,
    offline: bool,
    oauth: bool,
) -> web.Response:
    cfg = issuer.cfg
    granted = granted_accesses(cfg, subject, requested)
    now = int(time.time())
    claims = {
        "iss": cfg.issuer,
        "sub": subject or "",
        "aud": cfg.service,
        "exp": now + cfg.expiration,
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "access": resource_actions(granted),
    }
    token = issuer.signer.sign(claims)
    issued_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "token": token,
        "access_token": token,
        "expires_in": cfg.expiration,
        "issued_at": issued_at,
    }
    if oauth:
        body["scope"] = format_scope(granted)
    if offline and subject is not None:
        refresh = _refresh_token(issuer, subject, now)
        if refresh is not None:
            body["refresh_token"] = refresh
    log.info(
        "token issuer: issued token to %s for %s",
        subject or "anonymous",
        format_scope(granted) or "no access",
    )
    return web.Response(
        text=json.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def _get_token(request: web.Request) -> web.Response:
    issuer = request.app[_ISSUER]
    query = request.query
    try:
        _check_service(issuer, query.get("service"))
        requested = _parse_scopes(query.getall("scope", []))
        authorization = request.headers.get("Authorization")
        subject: str | None = None
        if authorization:
            credentials = parse_basic(authorization)
            if credentials is None:
                raise _unauthorized("malformed credentials")
            subject = await _authenticate(issuer, *credentials)
            account = query.get("account")
            if account and account != subject:
                raise _invalid("account does not match the authenticated user")
        elif not issuer.cfg.anonymous:
            raise _unauthorized()
        offline = query.get("offline_token", "").lower() == "true"
        return _token_response(issuer, subject, requested, offline=offline, oauth=False)
    except _Failure as failure:
        return _error_response(issuer, failure)


async def _post_token(request: web.Request) -> web.Response:
    issuer = request.app[_ISSUER]
    try:
        try:
            form = await request.post()
        except (ValueError, web.HTTPException):
            raise _invalid("malformed form body") from None

        def form_value(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        _check_service(issuer, form_value("service"))
        requested = _parse_scopes([str(v) for v in form.getall("scope", [])])
        grant_type = form_value("grant_type")
        if grant_type == "password":
            if not form_value("username"):
                raise _invalid("missing username")
            subject = await _authenticate(
                issuer, form_value("username"), form_value("password").encode("utf-8")
            )
            offline = form_value("access_type") == "offline"
        elif grant_type == "refresh_token":
            if not form_value("refresh_token"):
                raise _invalid("missing refresh_token")
            subject = _refresh_subject(issuer, form_value("refresh_token"))
            if form_value("username") and form_value("username") != subject:
                raise _unauthorized("invalid refresh token")
            offline = False
        else:
            raise _Failure(400, "UNSUPPORTED", f"unsupported grant_type {grant_type!r}")
        return _token_response(issuer, subject, requested, offline=offline, oauth=True)
    except _Failure as failure:
        return _error_response(issuer, failure)


def create_token_app(cfg: IssuerConfig) -> web.Application:
    """The issuer's aiohttp application: ``GET /token`` and ``POST /token``.

    Loads (or generates, on first start) the signing key and certificate and reads the
    htpasswd file; raises ``ValueError`` naming the config key if either fails.
    """
    signer = TokenSigner.load_or_create(cfg.certificate, cfg.key, cfg.issuer)
    users: HtpasswdFile | None = None
    if cfg.htpasswd is not None:
        try:
            users = HtpasswdFile(cfg.htpasswd)
        except ValueError as exc:
            raise ValueError(f"{SECTION}: option 'htpasswd': {exc}") from None
    app = web.Application(client_max_size=64 * 1024)
    app[_ISSUER] = _Issuer(cfg, signer, users)
    app.router.add_get("/token", _get_token)
    app.router.add_post("/token", _post_token)
    return app


def run_token_issuer(cfg: IssuerConfig) -> None:
    """Serve the issuer on ``cfg.addr`` until interrupted."""
    web.run_app(create_token_app(cfg), host=cfg.host, port=cfg.port)
