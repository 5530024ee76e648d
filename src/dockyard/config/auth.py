"""``auth``: htpasswd, token or silly."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config.section import Section
from dockyard.config.tree import Node, expand_type_name, fail


@dataclass(frozen=True, kw_only=True)
class HtpasswdAuthConfig:
    """``auth.htpasswd``: basic auth against an htpasswd (bcrypt) file."""

    realm: str
    path: str


@dataclass(frozen=True, kw_only=True)
class TokenAuthConfig:
    """``auth.token``: bearer tokens issued by an external token server."""

    realm: str
    service: str
    issuer: str
    root_cert_bundle: str = ""
    jwks: str = ""
    auto_redirect: bool = False


@dataclass(frozen=True, kw_only=True)
class SillyAuthConfig:
    """``auth.silly``: any ``Authorization`` header is accepted (testing only)."""

    realm: str
    service: str


AuthConfig = HtpasswdAuthConfig | TokenAuthConfig | SillyAuthConfig


def read_auth(node: Node | None, warnings: list[str]) -> AuthConfig | None:
    """The validated ``auth`` (None without one) section; unknown keys become warnings."""
    if node is None:
        return None
    s = Section(expand_type_name(node), ("auth",), warnings)
    if not s.items:
        return None
    if len(s.items) > 1:
        raise fail(("auth",), node, f"exactly one auth type expected, got {', '.join(s.items)}")
    kind = next(iter(s.items))
    p = s.section(kind)
    result: AuthConfig | None
    if kind.lower() == "none":
        result = None
    elif kind == "htpasswd":
        result = HtpasswdAuthConfig(realm=p.required("realm"), path=p.required("path"))
    elif kind == "token":
        result = TokenAuthConfig(
            realm=p.required("realm"),
            service=p.required("service"),
            issuer=p.required("issuer"),
            root_cert_bundle=p.text("rootcertbundle"),
            jwks=p.text("jwks"),
            auto_redirect=p.flag("autoredirect"),
        )
        if not (result.root_cert_bundle or result.jwks):
            raise fail(
                ("auth", "token", "rootcertbundle"),
                p.here("rootcertbundle"),
                "required (or auth.token.jwks)",
            )
    elif kind == "silly":
        result = SillyAuthConfig(realm=p.required("realm"), service=p.required("service"))
    else:
        raise fail(
            ("auth", kind),
            s.items[kind],
            "unsupported auth type; expected htpasswd, token or silly",
        )
    p.done()
    return result
