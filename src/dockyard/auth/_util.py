"""Small helpers shared by the access controllers and the token issuer."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "bearer_challenge",
    "check_keys",
    "get_header",
    "option_bool",
    "option_str",
    "parse_basic",
    "quote_param",
]


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name, from a multidict or a plain dict."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def quote_param(value: str) -> str:
    """An auth-param value as an RFC 7230 quoted-string (what Go's ``%q`` gives for ASCII)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(realm: str, service: str, scope: str, error: str | None = None) -> str:
    """``Bearer realm="..",service="..",scope=".."[,error=".."]`` as distribution writes it."""
    value = f"Bearer realm={quote_param(realm)},service={quote_param(service)}"
    if scope:
        value += f",scope={quote_param(scope)}"
    if error:
        value += f",error={quote_param(error)}"
    return value


def parse_basic(authorization: str | None) -> tuple[str, bytes] | None:
    """``(user, password)`` from ``Basic base64(user:password)``, or None if malformed.

    Like Go's ``Request.BasicAuth``: the scheme is case-insensitive and the credentials
    split at the first colon. The user name must be UTF-8; the password stays bytes.
    """
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def option_str(options: Mapping[str, Any], section: str, key: str) -> str:
    """A required, non-empty string option; ``ValueError`` naming ``section.key`` if not."""
    value = options.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{section}: option {key!r} must be set to a non-empty string")
    return value


def option_bool(options: Mapping[str, Any], section: str, key: str, default: bool = False) -> bool:
    """An optional boolean option (YAML booleans or the strings true/false)."""
    value = options.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ValueError(f"{section}: option {key!r} must be true or false")


def check_keys(options: Mapping[str, Any], section: str, known: Iterable[str]) -> None:
    """Refuse keys this section does not support, naming the first one."""
    allowed = set(known)
    for key in options:
        if key not in allowed:
            raise ValueError(
                f"{section}: unsupported option {key!r} (supported: {', '.join(sorted(allowed))})"
            )
