"""``proxy``: pull-through cache of one remote registry, or of several under prefixes.

``remoteurl`` makes the whole registry a cache of one upstream, as distribution.
``upstreams`` (dockyard) keeps ordinary hosted repositories and caches an upstream
under each ``prefix``; the two forms exclude each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config.section import Section
from dockyard.config.tree import fail
from dockyard.names import is_valid_repository_name

DEFAULT_TTL = 168 * 3600.0


@dataclass(frozen=True, kw_only=True)
class UpstreamConfig:
    """One of ``proxy.upstreams``: ``<prefix>/<name>`` is ``<name>`` on ``remote_url``."""

    prefix: str
    remote_url: str
    namespace: str = ""
    """What containerd sends as ``?ns=`` for this upstream (``docker.io``)."""
    username: str = ""
    password: str = ""
    ttl: float = DEFAULT_TTL


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """``proxy``: a pull-through cache of ``remote_url`` when that is set."""

    remote_url: str = ""
    username: str = ""
    password: str = ""
    ttl: float = DEFAULT_TTL
    """Seconds cached content lives; 0 keeps it forever."""
    upstreams: tuple[UpstreamConfig, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.remote_url or self.upstreams)


def read_proxy(s: Section) -> ProxyConfig:
    """The validated ``proxy`` section; unknown keys become warnings."""
    upstreams = tuple(_read_upstream(u) for u in s.sequence("upstreams"))
    result = ProxyConfig(
        remote_url=s.url("remoteurl"),
        username=s.text("username"),
        password=s.text("password"),
        ttl=s.duration("ttl", DEFAULT_TTL),
        upstreams=upstreams,
    )
    if result.remote_url and upstreams:
        raise fail(
            (*s.path, "upstreams"),
            s.here("upstreams"),
            "cannot be combined with proxy.remoteurl (which caches every repository)",
        )
    prefixes = [u.prefix for u in upstreams]
    for i, prefix in enumerate(prefixes):
        for other in prefixes[:i]:
            if prefix == other or prefix.startswith(f"{other}/") or other.startswith(f"{prefix}/"):
                raise fail(
                    (*s.path, "upstreams", i, "prefix"),
                    s.here("upstreams"),
                    f"{prefix!r} overlaps the prefix {other!r}",
                )
    namespaces = [u.namespace for u in upstreams if u.namespace]
    if len(namespaces) != len(set(namespaces)):
        raise fail(
            (*s.path, "upstreams"), s.here("upstreams"), "two upstreams have the same namespace"
        )
    s.done()
    return result


def _read_upstream(u: Section) -> UpstreamConfig:
    prefix = u.required("prefix").strip("/")
    if not is_valid_repository_name(prefix):
        raise fail(
            (*u.path, "prefix"), u.here("prefix"), f"{prefix!r} is not a repository name prefix"
        )
    result = UpstreamConfig(
        prefix=prefix,
        remote_url=u.url("remoteurl", required=True),
        namespace=u.text("namespace"),
        username=u.text("username"),
        password=u.text("password"),
        ttl=u.duration("ttl", DEFAULT_TTL),
    )
    u.done()
    return result
