"""``http``: listening address, TLS, headers, debug server, workers, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

from dockyard.config.section import Headers, Section
from dockyard.config.tree import fail


@dataclass(frozen=True, kw_only=True)
class HTTP2Config:
    """``http.http2``."""

    disabled: bool = False


@dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """``http.tls``: serve HTTPS when ``certificate`` is set."""

    certificate: str = ""
    key: str = ""
    client_cas: tuple[str, ...] = ()
    minimum_tls: Literal["tls1.0", "tls1.1", "tls1.2", "tls1.3"] = "tls1.2"
    cipher_suites: tuple[str, ...] = ()
    """Go (IANA) cipher suite names, as distribution takes them."""


@dataclass(frozen=True, kw_only=True)
class PrometheusConfig:
    """``http.debug.prometheus``."""

    enabled: bool = False
    path: str = "/metrics"


@dataclass(frozen=True, kw_only=True)
class DebugConfig:
    """``http.debug``: the debug server, off when ``addr`` is empty."""

    addr: str = ""
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)


@dataclass(frozen=True, kw_only=True)
class HTTPLimitsConfig:
    """``http.limits`` (dockyard's own; distribution has none): what a client may hold.

    ``headertimeout``: a request's line and headers must be complete this long after the
    connection opened or the previous response ended (idle keep-alive connections too).
    ``bodytimeout``: the longest a request body may send nothing, or a response body go
    unread. ``minbodyrate``: bytes a second a request body must average over each
    ``bodytimeout`` spent waiting for it (0: no minimum). ``maxheaderbytes``: the
    longest request line or header field (bearer tokens with certificate chains exceed
    8 KiB). ``maxconnections``: per worker; past it the oldest idle connection is closed,
    or, when none is idle, the new one is answered 503.
    """

    header_timeout: float = 60.0
    body_timeout: float = 60.0
    min_body_rate: int = 1024
    max_header_bytes: int = 65536
    max_connections: int = 1000


@dataclass(frozen=True, kw_only=True)
class HTTPConfig:
    """``http``.

    ``addr`` is ``host:port`` for ``net`` tcp/tcp4/tcp6 (see :func:`split_host_port`)
    or a socket path for ``unix``. ``prefix`` is ``""`` or starts and ends with
    ``/``. ``host`` is ``""`` or an absolute URL. ``secret`` is ``""`` when not
    configured: the server then uses the one kept in ``secret_file`` if that is set,
    else generates one per start and shares it with all its workers. ``workers`` is a
    dockyard extension.
    """

    addr: str = ":5000"
    net: Literal["tcp", "tcp4", "tcp6", "unix"] = "tcp"
    prefix: str = ""
    host: str = ""
    secret: str = ""
    relative_urls: bool = False
    drain_timeout: float = 0.0
    headers: Headers = field(default_factory=dict)
    http2: HTTP2Config = field(default_factory=HTTP2Config)
    tls: TLSConfig = field(default_factory=TLSConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    workers: int | None = None
    """None (not set): one worker per CPU this process may run on (see
    :func:`dockyard.assembly.default_workers`)."""
    limits: HTTPLimitsConfig = field(default_factory=HTTPLimitsConfig)
    secret_file: str = ""
    """Not a key: where the embedded default keeps a generated secret (with the data)."""


def read_http(s: Section) -> HTTPConfig:
    """The validated ``http`` section; unknown keys become warnings."""
    net = s.choice("net", ("tcp", "tcp4", "tcp6", "unix"), "tcp")
    addr = s.required("addr") if net == "unix" else s.address("addr", ":5000")
    prefix = s.text("prefix").strip().strip("/")
    prefix = f"/{prefix}/" if prefix else ""
    tls = s.section("tls")
    cert, key = tls.text("certificate"), tls.text("key")
    if bool(cert) != bool(key):
        missing = "key" if cert else "certificate"
        given = "certificate" if cert else "key"
        raise fail(
            ("http", "tls", missing), tls.here(given), f"required when http.tls.{given} is set"
        )
    http2 = s.section("http2")
    debug = s.section("debug")
    prometheus = debug.section("prometheus")
    prom_path = prometheus.text("path", "/metrics")
    if not prom_path.startswith("/"):
        raise fail(
            ("http", "debug", "prometheus", "path"),
            prometheus.here("path"),
            f"must start with /, got {prom_path!r}",
        )
    result = HTTPConfig(
        addr=addr,
        net=cast(Literal["tcp", "tcp4", "tcp6", "unix"], net),
        prefix=prefix,
        host=s.url("host"),
        secret=s.text("secret"),
        relative_urls=s.flag("relativeurls"),
        drain_timeout=s.duration("draintimeout", 0.0),
        headers=s.headers("headers"),
        http2=HTTP2Config(disabled=http2.flag("disabled")),
        tls=TLSConfig(
            certificate=cert,
            key=key,
            client_cas=tls.strings("clientcas"),
            minimum_tls=cast(
                Literal["tls1.0", "tls1.1", "tls1.2", "tls1.3"],
                tls.choice("minimumtls", ("tls1.0", "tls1.1", "tls1.2", "tls1.3"), "tls1.2"),
            ),
            cipher_suites=tls.strings("ciphersuites"),
        ),
        debug=DebugConfig(
            addr=debug.address("addr"),
            prometheus=PrometheusConfig(enabled=prometheus.flag("enabled"), path=prom_path),
        ),
        workers=s.integer("workers", 1, minimum=1) if s.raw("workers") is not None else None,
        limits=_read_limits(s.section("limits")),
    )
    for section in (tls, http2, prometheus, debug, s):
        section.done()
    return result


def _read_limits(s: Section) -> HTTPLimitsConfig:
    defaults = HTTPLimitsConfig()
    timeouts = {
        key: s.duration(key, default)
        for key, default in (
            ("headertimeout", defaults.header_timeout), ("bodytimeout", defaults.body_timeout)
        )
    }
    for key, value in timeouts.items():
        if value <= 0:
            raise fail(("http", "limits", key), s.here(key), "must be a positive duration")
    result = HTTPLimitsConfig(
        header_timeout=timeouts["headertimeout"],
        body_timeout=timeouts["bodytimeout"],
        min_body_rate=s.integer("minbodyrate", defaults.min_body_rate),
        max_header_bytes=s.integer("maxheaderbytes", defaults.max_header_bytes, minimum=1024),
        max_connections=s.integer("maxconnections", defaults.max_connections, minimum=1),
    )
    s.done()
    return result
