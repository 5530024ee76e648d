"""Bearer token (JWT) authorization, as distribution's ``auth/token``.

A request carries ``Authorization: Bearer <jwt>`` issued by a token server (the Docker
token specification; :mod:`dockyard.auth.issuer` is one). The token is accepted when:

1. its ``alg`` is RS256/384/512, ES256/384/512 or EdDSA (never ``none`` or ``HS*``),
   further limited by the ``signingalgorithms`` option, and the key type fits it;
2. its signing key is trusted, looked up in distribution's order, the first that is
   trusted wins: the ``x5c`` header chain verifies up to a certificate of
   ``rootcertbundle`` (signatures and validity dates along the chain); or a ``jwk``
   header whose key is trusted (or whose own ``x5c`` verifies); or ``kid`` names the
   libtrust key ID of a root certificate's key, or the ``kid`` of a ``jwks`` key.
   (distribution stops at the first reference present; dockyard falls through to the
   next, so a token with both ``x5c`` and ``kid`` works with either kind of trust);
3. the signature verifies with that key;
4. ``iss`` equals ``issuer``, ``aud`` contains ``service``, ``exp`` and ``nbf`` hold
   with 60 seconds of leeway;
5. ``access`` is a list of ``{type, name, actions}``.

Every failure is the same 401 challenge with ``error="invalid_token"`` (the reason is
logged, never the token); a valid token lacking a requested access gets
``error="insufficient_scope"``; no token gets the plain challenge::

    WWW-Authenticate: Bearer realm="https://auth.example.com/token",service="registry",
                      scope="repository:foo/bar:pull,push"[,error="..."]

With ``autoredirect: true`` the realm's host is replaced by the request's ``Host`` and
its scheme by ``X-Forwarded-Proto`` when present; ``autoredirectpath`` (distribution 3)
replaces its path too. (distribution 2.8 used ``https://<Host>/auth/token`` whatever
the realm; set ``autoredirectpath: /auth/token`` and an https realm for exactly that.)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography import x509

from dockyard.auth._util import (
    bearer_challenge,
    check_keys,
    get_header,
    option_bool,
    option_str,
)
from dockyard.auth.access import Access, AuthChallenge, Grant, format_scope
from dockyard.auth.keys import (
    ALGORITHMS,
    PublicKey,
    as_public_key,
    key_fits,
    libtrust_key_id,
    load_certificates,
    spki_der,
    verify_chain,
)

__all__ = [
    "LEEWAY",
    "InvalidToken",
    "TokenAccessController",
    "TrustStore",
    "load_jwks",
]

log = logging.getLogger(__name__)

_SECTION = "auth.token"
#: Clock skew allowed on ``exp`` and ``nbf``, as distribution's ``Leeway``.
LEEWAY = 60
_MAX_TOKEN = 64 * 1024


class InvalidToken(Exception):
    """The token is malformed, untrusted, badly signed, or its claims do not hold."""


def load_jwks(path: Path) -> dict[str, PublicKey]:
    """``{kid: public key}`` from a JSON Web Key Set file; ``ValueError`` if unusable."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot read JWKS {path}: {exc}") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError(f'{path}: expected a JWK set {{"keys": [...]}}')
    result: dict[str, PublicKey] = {}
    for index, entry in enumerate(keys):
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            raise ValueError(f"{path}: key {index} has no 'kid'")
        if "d" in entry or entry.get("kty") == "oct":
            raise ValueError(f"{path}: key {entry['kid']!r} is not a public asymmetric key")
        try:
            key = as_public_key(jwt.PyJWK(entry).key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: key {entry['kid']!r}: {exc}") from None
        if key is None:
            raise ValueError(f"{path}: key {entry['kid']!r} is not a public asymmetric key")
        result[entry["kid"]] = key
    return result


@dataclass(frozen=True)
class TrustStore:
    """Root certificates and trusted keys (by ``kid``) that token signatures chain to."""

    roots: tuple[x509.Certificate, ...] = ()
    keys: Mapping[str, PublicKey] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        roots: Sequence[x509.Certificate] = (),
        jwks: Mapping[str, PublicKey] | None = None,
    ) -> TrustStore:
        """Root certificates' keys are trusted under their libtrust key IDs, as in
        distribution; JWKS keys under their ``kid``."""
        keys: dict[str, PublicKey] = {}
        for cert in roots:
            key = as_public_key(cert.public_key())
            if key is not None:
                keys[libtrust_key_id(key)] = key
        keys.update(jwks or {})
        return cls(tuple(roots), keys)

    def _trusted_key(self, key: PublicKey) -> bool:
        der = spki_der(key)
        return any(spki_der(k) == der for k in self.keys.values())

    def _chain_key(self, x5c: object) -> PublicKey:
        if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
            raise InvalidToken("malformed x5c header")
        try:
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c
            ]
        except (binascii.Error, ValueError) as exc:
            raise InvalidToken(f"malformed x5c certificate: {exc}") from None
        try:
            leaf = verify_chain(chain, self.roots)
        except ValueError as exc:
            raise InvalidToken(f"untrusted x5c chain: {exc}") from None
        key = as_public_key(leaf.public_key())
        if key is None:
            raise InvalidToken("unsupported key type in x5c leaf certificate")
        return key

    def _jwk_key(self, raw: object) -> PublicKey:
        if not isinstance(raw, dict) or "d" in raw or raw.get("kty") == "oct":
            raise InvalidToken("malformed jwk header")
        try:
            key = as_public_key(jwt.PyJWK(raw).key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(f"malformed jwk header: {exc}") from None
        if key is None:
            raise InvalidToken("unsupported jwk key type")
        if "x5c" in raw:
            if spki_der(self._chain_key(raw["x5c"])) != spki_der(key):
                raise InvalidToken("leaf certificate key does not match jwk")
            return key
        if not self._trusted_key(key):
            raise InvalidToken("untrusted jwk with no certificate chain")
        return key

    def _kid_key(self, kid: object) -> PublicKey:
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("malformed kid header")
        trusted = self.keys.get(kid)
        if trusted is None:
            raise InvalidToken(f"token signed by untrusted key with ID {kid!r}")
        return trusted

    def signing_key(self, header: Mapping[str, Any]) -> PublicKey:
        """The trusted key that must have signed a token with this header.

        Tried in distribution's order: ``x5c``, ``jwk``, ``kid``. Unlike distribution, a
        reference that cannot be trusted (say an ``x5c`` chain when only ``jwks`` is
        configured) falls through to the next one, so a token carrying both ``x5c`` and
        ``kid`` is accepted by either kind of trust. This never weakens verification:
        whichever key is chosen, the signature must still verify with it.
        """
        lookups: list[tuple[str, Callable[[Any], PublicKey]]] = [
            ("x5c", self._chain_key),
            ("jwk", self._jwk_key),
            ("kid", self._kid_key),
        ]
        first_error: InvalidToken | None = None
        for name, lookup in lookups:
            if name not in header:
                continue
            try:
                return lookup(header[name])
            except InvalidToken as exc:
                first_error = first_error or exc
        raise first_error or InvalidToken("unable to get token signing key")


def _parse_access(claim: object) -> frozenset[Access]:
    if claim is None:
        return frozenset()
    if not isinstance(claim, list):
        raise InvalidToken("access claim is not a list")
    granted: set[Access] = set()
    for entry in claim:
        if not isinstance(entry, dict):
            raise InvalidToken("access entry is not an object")
        rtype, name, actions = entry.get("type"), entry.get("name"), entry.get("actions", [])
        if not isinstance(rtype, str) or not isinstance(name, str):
            raise InvalidToken("access entry without type or name")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise InvalidToken("access entry actions is not a list of strings")
        granted.update(Access(rtype, name, action) for action in actions)
    return frozenset(granted)


class TokenAccessController:
    """Verifies Bearer JWTs and their ``access`` claims."""

    def __init__(
        self,
        *,
        realm: str,
        service: str,
        issuer: str,
        trust: TrustStore,
        autoredirect: bool = False,
        autoredirect_path: str | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
    ) -> None:
        self.realm = realm
        self.service = service
        self.issuer = issuer
        self.trust = trust
        self.autoredirect = autoredirect
        self.autoredirect_path = autoredirect_path
        self.algorithms = tuple(algorithms)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TokenAccessController:
        """From ``auth.token``: ``realm``, ``service``, ``issuer``, ``rootcertbundle``
        and/or ``jwks``, optional ``autoredirect``, ``autoredirectpath``,
        ``signingalgorithms``."""
        check_keys(
            options,
            _SECTION,
            (
                "realm",
                "service",
                "issuer",
                "rootcertbundle",
                "jwks",
                "autoredirect",
                "autoredirectpath",
                "signingalgorithms",
            ),
        )
        realm = option_str(options, _SECTION, "realm")
        service = option_str(options, _SECTION, "service")
        issuer = option_str(options, _SECTION, "issuer")
        if not options.get("rootcertbundle") and not options.get("jwks"):
            raise ValueError(f"{_SECTION}: option 'rootcertbundle' (or 'jwks') must be set")
        roots: list[x509.Certificate] = []
        if options.get("rootcertbundle"):
            bundle = Path(option_str(options, _SECTION, "rootcertbundle"))
            try:
                roots = load_certificates(bundle)
            except ValueError as exc:
                raise ValueError(f"{_SECTION}: option 'rootcertbundle': {exc}") from None
        jwks: dict[str, PublicKey] = {}
        if options.get("jwks"):
            try:
                jwks = load_jwks(Path(option_str(options, _SECTION, "jwks")))
            except ValueError as exc:
                raise ValueError(f"{_SECTION}: option 'jwks': {exc}") from None
        autoredirect = option_bool(options, _SECTION, "autoredirect")
        path = options.get("autoredirectpath")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError(f"{_SECTION}: option 'autoredirectpath' must be a path like /auth")
        algorithms: Sequence[str] = ALGORITHMS
        if options.get("signingalgorithms") is not None:
            algs = options["signingalgorithms"]
            if not isinstance(algs, list) or not algs or not all(a in ALGORITHMS for a in algs):
                raise ValueError(
                    f"{_SECTION}: option 'signingalgorithms' must list some of "
                    f"{', '.join(ALGORITHMS)}"
                )
            algorithms = algs
        return cls(
            realm=realm,
            service=service,
            issuer=issuer,
            trust=TrustStore.build(roots, jwks),
            autoredirect=autoredirect,
            autoredirect_path=path,
            algorithms=algorithms,
        )

    def verify(self, raw: str) -> tuple[str | None, frozenset[Access]]:
        """``(subject, accesses)`` of a valid token; raises :class:`InvalidToken`."""
        if len(raw) > _MAX_TOKEN:
            raise InvalidToken("token too large")
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"signing algorithm {alg!r} is not accepted")
        key = self.trust.signing_key(header)
        if not key_fits(alg, key):
            raise InvalidToken(f"signing key does not fit algorithm {alg}")
        try:
            claims = jwt.decode(
                raw,
                key=key,
                algorithms=[alg],
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        subject = claims.get("sub")
        if subject is not None and not isinstance(subject, str):
            raise InvalidToken("sub claim is not a string")
        return subject or None, _parse_access(claims.get("access"))

    def _realm(self, headers: Mapping[str, str]) -> str:
        if not self.autoredirect:
            return self.realm
        parts = urlsplit(self.realm)
        host = get_header(headers, "Host") or parts.netloc
        proto = (get_header(headers, "X-Forwarded-Proto") or "").split(",")[0].strip()
        scheme = proto or parts.scheme or "https"
        path = self.autoredirect_path if self.autoredirect_path is not None else parts.path
        return urlunsplit((scheme, host, path, parts.query, ""))

    def _challenge(
        self, headers: Mapping[str, str], accesses: Sequence[Access], error: str | None
    ) -> AuthChallenge:
        value = bearer_challenge(self._realm(headers), self.service, format_scope(accesses), error)
        return AuthChallenge.unauthorized(value, accesses)

    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Grant:
        authorization = get_header(headers, "Authorization") or ""
        parts = authorization.split(" ")
        if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1]:
            raise self._challenge(headers, accesses, None)
        try:
            subject, granted = self.verify(parts[1])
        except InvalidToken as exc:
            log.info("token auth: invalid token: %s", exc)
            raise self._challenge(headers, accesses, "invalid_token") from None
        except Exception as exc:  # hostile input must never become a 500
            log.warning("token auth: cannot verify token: %s: %s", type(exc).__name__, exc)
            raise self._challenge(headers, accesses, "invalid_token") from None
        grant = Grant(subject=subject, accesses=granted)
        missing = [a for a in accesses if not grant.allows(a)]
        if missing:
            log.info("token auth: %s lacks %s", subject or "anonymous token", format_scope(missing))
            raise self._challenge(headers, accesses, "insufficient_scope")
        return grant
