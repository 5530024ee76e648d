"""``proxy``: pull-through cache of a remote registry."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config.section import Section


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """``proxy``: a pull-through cache of ``remote_url`` when that is set."""

    remote_url: str = ""
    username: str = ""
    password: str = ""
    ttl: float = 168 * 3600.0
    """Seconds cached content lives; 0 keeps it forever."""


def read_proxy(s: Section) -> ProxyConfig:
    """The validated ``proxy`` section; unknown keys become warnings."""
    result = ProxyConfig(
        remote_url=s.url("remoteurl"),
        username=s.text("username"),
        password=s.text("password"),
        ttl=s.duration("ttl", 168 * 3600.0),
    )
    s.done()
    return result
