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
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from dockyard.auth._util import check_keys, parse_basic, quote_param
from dockyard.auth.access import (
    ALL_ACTIONS,
    Access,
    format_scope,
    parse_scope,
    resource_actions,
)
from dockyard.auth.htpasswd import HtpasswdFile
from dockyard.auth.keys import (
    PrivateKey,
    algorithm_for,
    libtrust_key_id,
    load_certificates,
    spki_der,
)

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

_SECTION = "issuer config"
_ANONYMOUS = "anonymous"
_ANY_USER = "*"
_GROUP = "group:"
_CERT_VALIDITY = dt.timedelta(days=3650)
_REFRESH_TYPE = "refresh"


# Configuration


@dataclass(frozen=True)
class AclRule:
    """Allow ``subject`` the ``actions`` on resources of ``type`` whose name matches
    the glob ``repository``."""

    subject: str
    repository: str
    actions: tuple[str, ...]
    type: str = "repository"

    def matches(self, access: Access) -> bool:
        """True if this rule is about ``access``'s resource."""
        return access.type == self.type and fnmatchcase(access.name, self.repository)

    def permits(self, action: str) -> bool:
        """True if this rule allows ``action`` (``*`` allows all, incl. ``*`` itself)."""
        return ALL_ACTIONS in self.actions or action in self.actions


@dataclass(frozen=True)
class IssuerConfig:
    """The token issuer's settings (see :func:`load_issuer_config`)."""

    certificate: Path
    key: Path
    issuer: str = "dockyard-token-issuer"
    service: str = "dockyard"
    addr: str = "127.0.0.1:5001"
    expiration: int = 300
    htpasswd: Path | None = None
    anonymous: bool = False
    groups: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    acl: tuple[AclRule, ...] = ()
    realm: str = ""  # Basic challenge realm; empty means the issuer name
    refresh_expiration: int = 30 * 24 * 3600  # 0: no refresh tokens

    @property
    def host(self) -> str:
        """Host part of ``addr`` (IPv6 without brackets)."""
        return _split_addr(self.addr)[0]

    @property
    def port(self) -> int:
        """Port part of ``addr``."""
        return _split_addr(self.addr)[1]


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{_SECTION}: option 'addr' must be host:port, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _get_str(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{_SECTION}: option {key!r} must be a non-empty string")
    return value


def _get_int(data: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{_SECTION}: option {key!r} must be an integer >= {minimum}")
    return value


def _get_path(data: Mapping[str, Any], key: str, base: Path | None) -> Path:
    path = Path(_get_str(data, key))
    return base / path if base is not None and not path.is_absolute() else path


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{_SECTION}: option {where!r} must be a list of non-empty strings")
    return tuple(value)


def _parse_groups(value: Any) -> dict[str, frozenset[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{_SECTION}: option 'groups' must map group names to user lists")
    groups: dict[str, frozenset[str]] = {}
    for name, members in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{_SECTION}: option 'groups' has an invalid group name {name!r}")
        groups[name] = frozenset(_str_list(members, f"groups.{name}"))
    return groups


def _parse_acl(value: Any, groups: Mapping[str, frozenset[str]]) -> tuple[AclRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{_SECTION}: option 'acl' must be a list of rules")
    rules: list[AclRule] = []
    for index, entry in enumerate(value):
        where = f"acl[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{_SECTION}: option {where!r} must be a mapping")
        check_keys(entry, f"{_SECTION} {where}", ("subject", "repository", "actions", "type"))
        subject = entry.get("subject")
        if not isinstance(subject, str) or not subject or subject != subject.strip():
            raise ValueError(f"{_SECTION}: option '{where}.subject' must be a non-empty string")
        if subject.startswith(_GROUP) and subject[len(_GROUP) :] not in groups:
            raise ValueError(
                f"{_SECTION}: option '{where}.subject' names undefined group "
                f"{subject[len(_GROUP) :]!r} (define it under 'groups')"
            )
        repository = entry.get("repository")
        if not isinstance(repository, str) or not repository:
            raise ValueError(f"{_SECTION}: option '{where}.repository' must be a glob")
        rtype = entry.get("type", "repository")
        if not isinstance(rtype, str) or not rtype:
            raise ValueError(f"{_SECTION}: option '{where}.type' must be a non-empty string")
        actions = _str_list(entry.get("actions"), f"{where}.actions")
        rules.append(AclRule(subject, repository, actions, rtype))
    return tuple(rules)


_CONFIG_KEYS = (
    "issuer",
    "service",
    "addr",
    "expiration",
    "certificate",
    "key",
    "htpasswd",
    "anonymous",
    "groups",
    "acl",
    "realm",
    "refresh_expiration",
)


def parse_issuer_config(data: Any, base_dir: Path | None = None) -> IssuerConfig:
    """An :class:`IssuerConfig` from parsed YAML; relative paths are resolved against
    ``base_dir``. Raises ``ValueError`` naming the offending key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{_SECTION}: expected a mapping at the top level")
    check_keys(data, _SECTION, _CONFIG_KEYS)
    anonymous = data.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise ValueError(f"{_SECTION}: option 'anonymous' must be true or false")
    groups = _parse_groups(data.get("groups"))
    realm = data.get("realm", "")
    if not isinstance(realm, str):
        raise ValueError(f"{_SECTION}: option 'realm' must be a string")
    cfg = IssuerConfig(
        certificate=_get_path(data, "certificate", base_dir),
        key=_get_path(data, "key", base_dir),
        issuer=_get_str(data, "issuer", IssuerConfig.issuer),
        service=_get_str(data, "service", IssuerConfig.service),
        addr=_get_str(data, "addr", IssuerConfig.addr),
        expiration=_get_int(data, "expiration", IssuerConfig.expiration, 1),
        htpasswd=_get_path(data, "htpasswd", base_dir) if data.get("htpasswd") else None,
        anonymous=anonymous,
        groups=MappingProxyType(groups),
        acl=_parse_acl(data.get("acl"), groups),
        realm=realm,
        refresh_expiration=_get_int(data, "refresh_expiration", IssuerConfig.refresh_expiration, 0),
    )
    _split_addr(cfg.addr)
    return cfg


def load_issuer_config(path: str | os.PathLike[str]) -> IssuerConfig:
    """Read the issuer's YAML config file (relative paths are relative to its folder)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{_SECTION}: cannot read {path}: {exc}") from None
    return parse_issuer_config(data, path.parent)


# Authorization


def granted_accesses(
    cfg: IssuerConfig, subject: str | None, requested: Sequence[Access]
) -> list[Access]:
    """The requested accesses the ACL allows ``subject`` (None: anonymous)."""
    rules = [rule for rule in cfg.acl if _applies(cfg, rule, subject)]
    return [a for a in requested if any(r.matches(a) and r.permits(a.action) for r in rules)]


def _applies(cfg: IssuerConfig, rule: AclRule, subject: str | None) -> bool:
    if rule.subject == _ANONYMOUS:
        return cfg.anonymous
    if subject is None:
        return False
    if rule.subject == _ANY_USER:
        return True
    if rule.subject.startswith(_GROUP):
        return subject in cfg.groups.get(rule.subject[len(_GROUP) :], frozenset())
    return rule.subject == subject


# Signing


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically with exactly ``mode`` (umask does not apply)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _generate(cert_path: Path, key_path: Path, common_name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_file(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.warning(
        "generated token signing key %s and self-signed certificate %s (kid %s); "
        "point the registry's auth.token.rootcertbundle at the certificate",
        key_path,
        cert_path,
        libtrust_key_id(key.public_key()),
    )


def _ensure_signing_material(cert_path: Path, key_path: Path, common_name: str) -> None:
    """Generate key and certificate unless both exist; one process at a time."""
    if cert_path.exists() and key_path.exists():
        return
    for folder in {cert_path.parent, key_path.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(key_path.parent, os.O_RDONLY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        has_cert, has_key = cert_path.exists(), key_path.exists()
        if has_cert and has_key:
            return
        if has_cert or has_key:
            missing, present = ("key", "certificate") if has_cert else ("certificate", "key")
            raise ValueError(
                f"{_SECTION}: option {missing!r}: file is missing while the {present} exists; "
                "provide both or neither (then both are generated)"
            )
        _generate(cert_path, key_path, common_name)
    finally:
        os.close(lock_fd)


class TokenSigner:
    """Signs JWTs with a private key, naming it by ``kid`` and ``x5c``."""

    def __init__(self, private_key: PrivateKey, chain: Sequence[x509.Certificate]) -> None:
        public = private_key.public_key()
        if not chain or spki_der(chain[0].public_key()) != spki_der(public):  # type: ignore[arg-type]
            raise ValueError("the certificate does not match the signing key")
        self.private_key = private_key
        self.public_key = public
        self.chain = tuple(chain)
        self.algorithm = algorithm_for(private_key)
        self.key_id = libtrust_key_id(public)
        self.x5c = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
            for c in chain
        ]

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> TokenSigner:
        """From PEM files; ``ValueError`` naming the ``key`` or ``certificate`` option."""
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{_SECTION}: option 'key': cannot load {key_path}: {exc}") from None
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise ValueError(f"{_SECTION}: option 'key': unsupported key type in {key_path}")
        try:
            chain = load_certificates(cert_path)
            return cls(key, chain)
        except ValueError as exc:
            raise ValueError(f"{_SECTION}: option 'certificate': {exc}") from None

    @classmethod
    def load_or_create(cls, cert_path: Path, key_path: Path, common_name: str) -> TokenSigner:
        """Load key and certificate, generating both first if neither exists."""
        try:
            _ensure_signing_material(cert_path, key_path, common_name)
        except OSError as exc:
            raise ValueError(
                f"{_SECTION}: option 'key': cannot create signing key and certificate: {exc}"
            ) from None
        return cls.load(cert_path, key_path)

    def sign(self, claims: Mapping[str, Any], *, x5c: bool = True) -> str:
        """A compact JWS of ``claims`` with ``kid`` and (unless ``x5c=False``) ``x5c``."""
        headers: dict[str, Any] = {"typ": "JWT", "kid": self.key_id}
        if x5c:
            headers["x5c"] = self.x5c
        return jwt.encode(dict(claims), self.private_key, algorithm=self.algorithm, headers=headers)


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
            raise ValueError(f"{_SECTION}: option 'htpasswd': {exc}") from None
    app = web.Application(client_max_size=64 * 1024)
    app[_ISSUER] = _Issuer(cfg, signer, users)
    app.router.add_get("/token", _get_token)
    app.router.add_post("/token", _post_token)
    return app


def run_token_issuer(cfg: IssuerConfig) -> None:
    """Serve the issuer on ``cfg.addr`` until interrupted."""
    web.run_app(create_token_app(cfg), host=cfg.host, port=cfg.port)
