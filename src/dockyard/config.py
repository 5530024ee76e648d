"""Registry configuration: distribution's ``config.yml`` and ``REGISTRY_*`` overrides.

:func:`load_config` reads the same YAML file that CNCF distribution (Debian's
``docker-registry`` 2.8) reads, applies environment overrides the way distribution
does, validates everything, and returns frozen dataclasses (:class:`Config`) plus a
list of warnings. A problem that stops the registry raises :class:`ConfigError`,
whose message starts with the offending key path, e.g.
``storage.delete.enabled: expected a boolean, got 'yes please' (config.yml, line 7)``.

File
    One YAML document; ``version`` must be ``0.1``. Anchors, aliases and ``<<``
    merge keys work. A key given twice is a warning (the last one wins, as in
    distribution). Every key that is not modelled here is reported as a warning
    ``unsupported configuration key "a.b.c"``, never silently ignored; the
    parameters of a storage driver and ``log.fields`` are free-form (the driver
    validates its own parameters). ``path=None`` uses the embedded default: the
    stock ``config.yml`` of distribution, with filesystem storage rooted at
    ``./registry-data`` (made absolute against the current directory) and deletes
    disabled.

Values
    A string field takes any scalar as written (``secret: 12345`` is ``"12345"``),
    a boolean field takes YAML 1.1 booleans (``true``, ``yes``, ``on``...), an
    integer field takes integers. ``null`` or an empty value means "not set": the
    default applies. Durations are Go duration strings (``"168h"``, ``"1h30m"``,
    ``"10s"``, ``"250ms"``; units ns, us, ms, s, m, h; ``"0"``) or plain numbers,
    which dockyard reads as **seconds** (distribution would read them as
    nanoseconds, which no working configuration relies on). Durations are floats
    in seconds and may not be negative.

Environment overrides (distribution's rules)
    * Only variables whose name starts with ``REGISTRY_`` and is entirely upper
      case count; ``REGISTRY_CONFIGURATION_PATH`` (the CLI's) is skipped, and
      ``REGISTRY_VERSION`` is ignored with a warning.
    * Variables are applied in lexical order of their names, so
      ``REGISTRY_STORAGE`` is applied before ``REGISTRY_STORAGE_S3_REGION``.
    * The name minus the prefix is split on ``_``; each part selects a key in the
      current section, compared case-insensitively; a missing key is created in
      lower case, and a missing or null intermediate section is created (a list
      where the schema has a list). So ``REGISTRY_STORAGE_S3_REGIONENDPOINT``
      sets ``storage.s3.regionendpoint`` and ``REGISTRY_REDIS_ADDR`` creates a
      ``redis`` section absent from the file.
    * In a list, the part is an index: an existing item, or the length of the list
      to append one (``REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL``); anything else is
      a :class:`ConfigError`.
    * The value is parsed as a YAML document and replaces the key, so it may be a
      scalar (``true``, ``10s``) or a whole section (``REGISTRY_HTTP_TLS_CLIENTCAS=
      "[/a.pem, /b.pem]"``); it is then validated like the file. An empty value
      sets null, i.e. the default.
    * As in distribution, the Go field names are accepted where they differ from
      the YAML keys: ``REGISTRY_NOTIFICATIONS_EVENTCONFIG_*`` (``events``),
      ``REGISTRY_HEALTH_FILECHECKERS_*`` / ``HTTPCHECKERS`` / ``TCPCHECKERS``
      (``file`` / ``http`` / ``tcp``), ``REGISTRY_COMPATIBILITY_SCHEMA1_TRUSTKEY``
      (``signingkeyfile``); the YAML names work too.
    * ``REGISTRY_STORAGE=<driver>`` selects a driver with no parameters, dropping
      the file's driver section, like ``storage: <driver>`` in the file. Unlike
      distribution, the non-driver subsections of the file (``delete``,
      ``redirect``, ``cache``, ``maintenance``, ``tag``) are kept. A YAML mapping
      as value replaces the whole storage section. ``REGISTRY_AUTH=<type>`` works
      the same way.
    * A variable that reaches below a value that is set (``REGISTRY_HTTP_ADDR_X``
      with ``http.addr`` set) is ignored with a warning; below a value that is not
      set, it creates a section, which then fails validation like a wrong type in
      the file would. A variable naming an unknown key produces the usual
      unsupported-key warning. Unlike distribution, nested maps of the file (such
      as ``storage.maintenance.uploadpurging``) can be overridden too.

Differences from distribution, all deliberate
    * Unknown log formatter, TLS version, auth type or storage driver, a missing
      required key, a bad address, URL or regular expression is an error at load
      time rather than a panic later. An unknown ``storage.cache.blobdescriptor``
      only warns and disables the cache, as in distribution.
    * ``http.tls.minimumtls`` defaults to ``tls1.2``.
    * dockyard extension: ``http.workers`` (integer >= 1, default 1) is the number
      of worker processes serving ``http.addr``; ``http.limits`` (timeouts, header
      size, connection cap: see :class:`HTTPLimitsConfig`) guards against slow or
      hostile clients.
    * Sections that dockyard models are parsed even where the server does not
      implement them yet; the server decides what to warn about. Sections it does
      not model (``reporting``, ``policy``, ``log.hooks``, ``http.tls.letsencrypt``,
      ``token_server``...) and non-empty ``middleware`` lists are warnings.

The returned :class:`Config` is picklable, so it can be handed to worker processes.
Mappings inside it are plain dicts: treat them as read-only.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import yaml

__all__ = [
    "AccessLogConfig",
    "AuthConfig",
    "CacheConfig",
    "CatalogConfig",
    "CompatibilityConfig",
    "Config",
    "ConfigError",
    "DebugConfig",
    "DeleteConfig",
    "EndpointConfig",
    "EventsConfig",
    "FileCheckerConfig",
    "HTTP2Config",
    "HTTPCheckerConfig",
    "HTTPConfig",
    "HTTPLimitsConfig",
    "HealthConfig",
    "HtpasswdAuthConfig",
    "IgnoreConfig",
    "LogConfig",
    "MaintenanceConfig",
    "ManifestValidationConfig",
    "NotificationsConfig",
    "PrometheusConfig",
    "ProxyConfig",
    "ReadOnlyConfig",
    "RedirectConfig",
    "RedisConfig",
    "RedisPoolConfig",
    "RedisTLSConfig",
    "Schema1Config",
    "SillyAuthConfig",
    "StorageConfig",
    "StorageDriverCheckerConfig",
    "TCPCheckerConfig",
    "TLSConfig",
    "TagConfig",
    "TokenAuthConfig",
    "URLValidationConfig",
    "UploadPurgingConfig",
    "ValidationConfig",
    "load_config",
    "parse_duration",
    "split_host_port",
]

LogLevel = Literal["error", "warn", "info", "debug"]
LogFormatter = Literal["text", "json", "logstash"]
BlobDescriptorCache = Literal["", "inmemory", "redis"]
Headers = Mapping[str, tuple[str, ...]]

STORAGE_DRIVERS = ("filesystem", "inmemory", "s3", "azure", "gcs")
"""The storage driver names dockyard accepts under ``storage``."""


class ConfigError(Exception):
    """The configuration cannot be used; the message starts with the key path."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


# ---------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, kw_only=True)
class AccessLogConfig:
    """``log.accesslog``."""

    disabled: bool = False


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    """``log``: level (also the deprecated top-level ``loglevel``), formatter, fields."""

    level: LogLevel = "info"
    formatter: LogFormatter = "text"
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Static fields added to every log line."""
    access_log: AccessLogConfig = field(default_factory=AccessLogConfig)


@dataclass(frozen=True, kw_only=True)
class DeleteConfig:
    """``storage.delete``: deleting manifests and blobs through the API."""

    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class RedirectConfig:
    """``storage.redirect``: ``disable: true`` serves blobs instead of redirecting."""

    disable: bool = False


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """``storage.cache``: the blob descriptor cache (``""`` means none)."""

    blob_descriptor: BlobDescriptorCache = ""
    blob_descriptor_size: int = 10000
    """Entries of the in-memory cache."""


@dataclass(frozen=True, kw_only=True)
class UploadPurgingConfig:
    """``storage.maintenance.uploadpurging``: removal of abandoned uploads."""

    enabled: bool = True
    age: float = 168 * 3600.0
    """Seconds after which an upload is abandoned."""
    interval: float = 24 * 3600.0
    """Seconds between two purges."""
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class ReadOnlyConfig:
    """``storage.maintenance.readonly``: refuse every write."""

    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class MaintenanceConfig:
    """``storage.maintenance``."""

    upload_purging: UploadPurgingConfig = field(default_factory=UploadPurgingConfig)
    read_only: ReadOnlyConfig = field(default_factory=ReadOnlyConfig)


@dataclass(frozen=True, kw_only=True)
class TagConfig:
    """``storage.tag``."""

    concurrency_limit: int = 0
    """Concurrent tag lookups; 0 means automatic."""


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """``storage``: one driver with its free-form parameters, and the common settings.

    ``parameters`` holds the driver section as written, with its top-level keys
    lower-cased (``rootdirectory``, ``regionendpoint``...); the driver validates
    them. The dataclass default is the in-memory driver, handy for tests;
    :func:`load_config` always sets a driver.
    """

    driver: str = "inmemory"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    delete: DeleteConfig = field(default_factory=DeleteConfig)
    redirect: RedirectConfig = field(default_factory=RedirectConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    tag: TagConfig = field(default_factory=TagConfig)


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
    ``bodytimeout``: the longest a request body may send nothing. ``maxheaderbytes``: the
    longest request line or header field (bearer tokens with certificate chains exceed
    8 KiB). ``maxconnections``: per worker; past it the oldest idle connection is closed,
    or, when none is idle, the new one is answered 503.
    """

    header_timeout: float = 60.0
    body_timeout: float = 60.0
    max_header_bytes: int = 65536
    max_connections: int = 1000


@dataclass(frozen=True, kw_only=True)
class HTTPConfig:
    """``http``.

    ``addr`` is ``host:port`` for ``net`` tcp/tcp4/tcp6 (see :func:`split_host_port`)
    or a socket path for ``unix``. ``prefix`` is ``""`` or starts and ends with
    ``/``. ``host`` is ``""`` or an absolute URL. ``secret`` is ``""`` when not
    configured: the server must then generate one per start and share it with all
    its workers. ``workers`` is a dockyard extension.
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
    workers: int = 1
    limits: HTTPLimitsConfig = field(default_factory=HTTPLimitsConfig)


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


@dataclass(frozen=True, kw_only=True)
class IgnoreConfig:
    """``notifications.endpoints[].ignore``."""

    media_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """One of ``notifications.endpoints``; zero durations and threshold take the defaults."""

    name: str
    url: str
    disabled: bool = False
    headers: Headers = field(default_factory=dict)
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignored_media_types: tuple[str, ...] = ()
    ignore: IgnoreConfig = field(default_factory=IgnoreConfig)


@dataclass(frozen=True, kw_only=True)
class EventsConfig:
    """``notifications.events``."""

    include_references: bool = False


@dataclass(frozen=True, kw_only=True)
class NotificationsConfig:
    """``notifications``."""

    endpoints: tuple[EndpointConfig, ...] = ()
    events: EventsConfig = field(default_factory=EventsConfig)


@dataclass(frozen=True, kw_only=True)
class RedisPoolConfig:
    """``redis.pool``; zeros mean the client's defaults."""

    max_idle: int = 0
    max_active: int = 0
    idle_timeout: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RedisTLSConfig:
    """``redis.tls``."""

    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    """``redis``: unused when ``addr`` is empty; zero timeouts mean the client's defaults."""

    addr: str = ""
    password: str = ""
    db: int = 0
    dial_timeout: float = 0.0
    read_timeout: float = 0.0
    write_timeout: float = 0.0
    pool: RedisPoolConfig = field(default_factory=RedisPoolConfig)
    tls: RedisTLSConfig = field(default_factory=RedisTLSConfig)


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """``proxy``: a pull-through cache of ``remote_url`` when that is set."""

    remote_url: str = ""
    username: str = ""
    password: str = ""
    ttl: float = 168 * 3600.0
    """Seconds cached content lives; 0 keeps it forever."""


@dataclass(frozen=True, kw_only=True)
class StorageDriverCheckerConfig:
    """``health.storagedriver``; threshold 0 or 1: unhealthy on the first failure."""

    enabled: bool = False
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class FileCheckerConfig:
    """One of ``health.file``: unhealthy while ``file`` exists."""

    file: str
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class HTTPCheckerConfig:
    """One of ``health.http``: unhealthy unless ``uri`` answers ``status_code``."""

    uri: str
    headers: Headers = field(default_factory=dict)
    status_code: int = 200
    timeout: float = 0.0
    """Seconds; 0 means no timeout."""
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class TCPCheckerConfig:
    """One of ``health.tcp``: unhealthy unless ``addr`` accepts connections."""

    addr: str
    timeout: float = 0.0
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class HealthConfig:
    """``health``."""

    storage_driver: StorageDriverCheckerConfig = field(default_factory=StorageDriverCheckerConfig)
    file_checkers: tuple[FileCheckerConfig, ...] = ()
    http_checkers: tuple[HTTPCheckerConfig, ...] = ()
    tcp_checkers: tuple[TCPCheckerConfig, ...] = ()


@dataclass(frozen=True, kw_only=True)
class URLValidationConfig:
    """``validation.manifests.urls``: patterns searched (unanchored) in foreign-layer URLs.

    With validation on and both lists empty, no URL is allowed (distribution's rule).
    """

    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ManifestValidationConfig:
    """``validation.manifests``."""

    urls: URLValidationConfig = field(default_factory=URLValidationConfig)


@dataclass(frozen=True, kw_only=True)
class ValidationConfig:
    """``validation``; ``disabled`` is true only if ``disabled`` is set and the older
    ``enabled`` is not, as in distribution."""

    disabled: bool = False
    manifests: ManifestValidationConfig = field(default_factory=ManifestValidationConfig)


@dataclass(frozen=True, kw_only=True)
class Schema1Config:
    """``compatibility.schema1``."""

    signing_key_file: str = ""
    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class CompatibilityConfig:
    """``compatibility``."""

    schema1: Schema1Config = field(default_factory=Schema1Config)


@dataclass(frozen=True, kw_only=True)
class CatalogConfig:
    """``catalog``: the largest page ``/v2/_catalog`` returns (0 or less means 1000)."""

    max_entries: int = 1000


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration (``version`` is always ``"0.1"``)."""

    version: str = "0.1"
    log: LogConfig = field(default_factory=LogConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    auth: AuthConfig | None = None
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    compatibility: CompatibilityConfig = field(default_factory=CompatibilityConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)


# ---------------------------------------------------------------------------
# Public helpers

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``"1h30m"``, ``"10s"``, ``"0"``); ValueError if bad."""
    s = text.strip()
    if s.startswith("-"):
        raise ValueError(f"negative duration {text!r}")
    s = s.removeprefix("+")
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("empty duration")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} (use a number and a unit: 90s, 1h30m)")
        total += float(m[1]) * _DURATION_UNITS[m[2]]
        pos = m.end()
    return total


def split_host_port(addr: str) -> tuple[str, int]:
    """``":5000"`` → ``("", 5000)``, ``"[::1]:5000"`` → ``("::1", 5000)``; ValueError if bad.

    An empty host means every interface.
    """
    if addr.startswith("["):
        host, bracket, rest = addr[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"invalid address {addr!r}: expected [ipv6]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid address {addr!r}: {host!r} is not an IPv6 address") from None
        port = rest[1:]
    else:
        host, colon, port = addr.rpartition(":")
        if not colon:
            raise ValueError(f"invalid address {addr!r}: expected host:port, e.g. :5000")
        if ":" in host:
            raise ValueError(f"invalid address {addr!r}: write an IPv6 host in brackets")
        if any(c.isspace() or c in "/[]" for c in host):
            raise ValueError(f"invalid address {addr!r}: bad host {host!r}")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"invalid address {addr!r}: port must be a number from 0 to 65535")
    return host, int(port)


# ---------------------------------------------------------------------------
# The raw tree: YAML (file or environment) before validation


@dataclass
class _Leaf:
    value: Any  # the constructed scalar; None for null
    text: str  # the scalar as written
    where: str  # "config.yml, line 3", "from REGISTRY_X" or ""


@dataclass
class _Map:
    items: dict[str, _Node]
    where: str


@dataclass
class _Seq:
    items: list[_Node]
    where: str


_Node = _Leaf | _Map | _Seq
_Path = tuple[str | int, ...]


def _key(path: _Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _at(where: str) -> str:
    return f" ({where})" if where else ""


def _fail(path: _Path, node: _Node | None, problem: str) -> ConfigError:
    key = _key(path) or "configuration"
    return ConfigError(f"{key}: {problem}{_at(node.where if node else '')}", key)


def _describe(node: _Node) -> str:
    if isinstance(node, _Map):
        return "a mapping"
    if isinstance(node, _Seq):
        return "a list"
    if node.value is None:
        return "null"
    return repr(node.value) if isinstance(node.value, str) else node.text


def _is_null(node: _Node | None) -> bool:
    return node is None or (isinstance(node, _Leaf) and node.value is None)


class _Reader:
    """Turns one YAML document into a raw tree, keeping where each value came from."""

    _MERGE = "tag:yaml.org,2002:merge"

    def __init__(self, source: str, env: bool, warnings: list[str]) -> None:
        self.source, self.env, self.warnings = source, env, warnings
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()

    def where(self, mark: yaml.Mark | None) -> str:
        if self.env:
            return f"from {self.source}"
        if not self.source or mark is None:
            return ""
        return f"{self.source}, line {mark.line + 1}"

    def read(self, text: str) -> _Node | None:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = f"{self.source}: malformed YAML" if self.env else f"malformed YAML{where}"
            problem = " ".join(p for p in (exc.context, exc.problem) if p)
            raise ConfigError(f"{what}: {problem}" if problem else what) from None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"malformed YAML in {self.source or 'configuration'}: {exc}"
            ) from None
        finally:
            loader.dispose()
        return None if node is None else self.convert(node, (), self.where(node.start_mark))

    def convert(self, node: yaml.Node, path: _Path, where: str) -> _Node:
        if id(node) in self.active:
            raise ConfigError(f"{_key(path) or 'configuration'}: recursive YAML alias{_at(where)}")
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.constructor.construct_object(node)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                raise ConfigError(f"{_key(path)}: {problem}{_at(where)}", _key(path)) from None
            return _Leaf(value, str(node.value), where)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return _Seq(
                    [
                        self.convert(item, (*path, i), self.where(item.start_mark))
                        for i, item in enumerate(node.value)
                    ],
                    where,
                )
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path, where)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: _Path, where: str) -> _Map:
        items: dict[str, _Node] = {}
        merged: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key_where = self.where(key_node.start_mark)
            if key_node.tag == self._MERGE:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    sub = self.convert(source, path, key_where)
                    if not isinstance(sub, _Map):
                        raise _fail(path, sub, "a << merge key takes mappings only")
                    for k, v in sub.items.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _fail(path, _Leaf(None, "", key_where), "keys must be plain scalars")
            key = str(key_node.value)
            if key in items:
                self.warnings.append(
                    f'duplicate configuration key "{_key((*path, key))}"{_at(key_where)}: '
                    "the last value wins"
                )
            items[key] = self.convert(value_node, (*path, key), key_where)
        for k, v in merged.items():
            items.setdefault(k, v)
        return _Map(items, where)


# ---------------------------------------------------------------------------
# Environment overrides

_ENV_PREFIX = "REGISTRY_"
_ENV_SKIPPED = frozenset({"REGISTRY_CONFIGURATION_PATH"})
_ENV_ALIASES: dict[tuple[str, ...], dict[str, str]] = {
    ("notifications",): {"EVENTCONFIG": "events"},
    ("health",): {"FILECHECKERS": "file", "HTTPCHECKERS": "http", "TCPCHECKERS": "tcp"},
    ("compatibility", "schema1"): {"TRUSTKEY": "signingkeyfile"},
}
# Keys that hold lists, so that an override can create them ("*": any key or index).
_LIST_KEYS = (
    ("notifications", "endpoints"),
    ("notifications", "endpoints", "*", "ignoredmediatypes"),
    ("notifications", "endpoints", "*", "ignore", "mediatypes"),
    ("notifications", "endpoints", "*", "ignore", "actions"),
    ("notifications", "endpoints", "*", "headers", "*"),
    ("http", "headers", "*"),
    ("http", "tls", "clientcas"),
    ("http", "tls", "ciphersuites"),
    ("health", "file"),
    ("health", "http"),
    ("health", "http", "*", "headers", "*"),
    ("health", "tcp"),
    ("validation", "manifests", "urls", "allow"),
    ("validation", "manifests", "urls", "deny"),
    ("middleware", "*"),
    ("log", "hooks"),
)
_STORAGE_SUBSECTIONS = ("delete", "redirect", "cache", "maintenance", "tag")


def _is_list_key(path: _Path) -> bool:
    return any(
        len(pattern) == len(path)
        and all(p in ("*", str(q)) for p, q in zip(pattern, path, strict=True))
        for pattern in _LIST_KEYS
    )


def _expand_type_name(node: _Node) -> _Node:
    """``storage: s3`` or ``auth: silly`` means a section with no parameters."""
    if isinstance(node, _Leaf) and isinstance(node.value, str) and node.value:
        return _Map({node.value: _Map({}, node.where)}, node.where)
    return node


def _apply_env(root: _Map, environ: Mapping[str, str], warnings: list[str]) -> None:
    for name in sorted(environ):
        if not name.startswith(_ENV_PREFIX) or name in _ENV_SKIPPED:
            continue
        parts = name.split("_")[1:]
        if name != name.upper() or not all(parts):
            warnings.append(
                f"ignoring environment variable {name}: expected REGISTRY_ and upper-case "
                "key names joined by single underscores"
            )
            continue
        if parts[0] == "VERSION":
            warnings.append(f"ignoring environment variable {name}: version cannot be overridden")
            continue
        value = _Reader(name, True, warnings).read(environ[name])
        _override(root, parts, value or _Leaf(None, "", f"from {name}"), name, warnings)


def _override(root: _Map, parts: list[str], value: _Node, name: str, warnings: list[str]) -> None:
    where = f"from {name}"
    node: _Map | _Seq = root
    path: _Path = ()
    for i, part in enumerate(parts):
        key: str | int
        if isinstance(node, _Seq):
            if not (part.isascii() and part.isdigit()):
                raise ConfigError(
                    f"{_key(path)}: {name} needs a list index, not {part!r}", _key(path)
                )
            key = int(part)
            if key > len(node.items):
                raise ConfigError(
                    f"{_key((*path, key))}: {name} skips an index; the list has "
                    f"{len(node.items)} items",
                    _key((*path, key)),
                )
            if key == len(node.items):
                node.items.append(_Leaf(None, "", where))
            child: _Node | None = node.items[key]
        else:
            key = _env_key(node, path, part)
            child = node.items.get(key)
        if i == len(parts) - 1:
            if path == () and key in ("storage", "auth"):
                expanded = _expand_type_name(value)
                if key == "storage" and expanded is not value and isinstance(child, _Map):
                    assert isinstance(expanded, _Map)
                    for sub in _STORAGE_SUBSECTIONS:
                        if sub in child.items:
                            expanded.items.setdefault(sub, child.items[sub])
                value = expanded
            _put(node, key, value)
            return
        if _is_null(child):
            child = _Seq([], where) if _is_list_key((*path, key)) else _Map({}, where)
            _put(node, key, child)
        elif isinstance(child, _Leaf):
            warnings.append(
                f'ignoring environment variable {name}: "{_key((*path, key))}" is a value, '
                "not a section"
            )
            return
        assert isinstance(child, _Map | _Seq)
        node, path = child, (*path, key)


def _env_key(node: _Map, path: _Path, part: str) -> str:
    alias = _ENV_ALIASES.get(tuple(str(p) for p in path), {}).get(part)
    if alias:
        return alias
    lower = part.lower()
    if lower in node.items:
        return lower
    return next((k for k in node.items if k.upper() == part), lower)


def _put(node: _Map | _Seq, key: str | int, value: _Node) -> None:
    if isinstance(node, _Seq):
        assert isinstance(key, int)
        node.items[key] = value
    else:
        assert isinstance(key, str)
        node.items[key] = value


# ---------------------------------------------------------------------------
# Validation: raw tree -> dataclasses

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _plain(node: _Node | None) -> Any:
    if node is None:
        return None
    if isinstance(node, _Map):
        return {k: _plain(v) for k, v in node.items.items()}
    if isinstance(node, _Seq):
        return [_plain(v) for v in node.items]
    return node.value


class _Section:
    """A mapping being read into a dataclass; unread keys become warnings in :meth:`done`."""

    def __init__(self, node: _Node | None, path: _Path, warnings: list[str]) -> None:
        self.path, self.warnings = path, warnings
        self.used: set[str] = set()
        self.items: dict[str, _Node] = {}
        self.where = node.where if node else ""
        if isinstance(node, _Map):
            self.items = node.items
        elif node is not None and not _is_null(node):
            raise _fail(path, node, f"expected a mapping, got {_describe(node)}")

    def raw(self, key: str) -> _Node | None:
        """The node under ``key``, None if absent or null; marks the key as read."""
        self.used.add(key)
        node = self.items.get(key)
        return None if _is_null(node) else node

    def section(self, key: str) -> _Section:
        return _Section(self.raw(key), (*self.path, key), self.warnings)

    def text(self, key: str, default: str = "") -> str:
        node = self.raw(key)
        if node is None:
            return default
        if not isinstance(node, _Leaf):
            raise _fail((*self.path, key), node, f"expected a string, got {_describe(node)}")
        return node.text

    def here(self, key: str) -> _Node:
        """The node under ``key`` or, if absent, a stand-in located at this section."""
        return self.items.get(key) or _Leaf(None, "", self.where)

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise _fail((*self.path, key), self.here(key), "required")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        node = self.raw(key)
        if node is None:
            return default
        if not (isinstance(node, _Leaf) and isinstance(node.value, bool)):
            raise _fail((*self.path, key), node, f"expected a boolean, got {_describe(node)}")
        return node.value

    def integer(self, key: str, default: int = 0, minimum: int = 0) -> int:
        node = self.raw(key)
        if node is None:
            return default
        if not (
            isinstance(node, _Leaf)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            raise _fail((*self.path, key), node, f"expected an integer, got {_describe(node)}")
        if node.value < minimum:
            raise _fail((*self.path, key), node, f"must be at least {minimum}, got {node.value}")
        return node.value

    def duration(self, key: str, default: float) -> float:
        node = self.raw(key)
        if node is None:
            return default
        value = node.value if isinstance(node, _Leaf) else None
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise _fail((*self.path, key), node, str(exc)) from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value) or value < 0:
                raise _fail(
                    (*self.path, key), node, f"must be a non-negative duration, got {value}"
                )
            return float(value)
        raise _fail(
            (*self.path, key), node, f'expected a duration such as "10s", got {_describe(node)}'
        )

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key).lower() or default
        if value not in choices:
            raise _fail(
                (*self.path, key),
                self.here(key),
                f"expected one of {', '.join(choices)}, got {value!r}",
            )
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        node = self.raw(key)
        if node is None:
            return ()
        path = (*self.path, key)
        if not isinstance(node, _Seq):
            raise _fail(path, node, f"expected a list of strings, got {_describe(node)}")
        out = []
        for i, item in enumerate(node.items):
            if not isinstance(item, _Leaf) or item.value is None:
                raise _fail((*path, i), item, f"expected a string, got {_describe(item)}")
            out.append(item.text)
        return tuple(out)

    def sequence(self, key: str) -> list[_Section]:
        node = self.raw(key)
        if node is None:
            return []
        path = (*self.path, key)
        if not isinstance(node, _Seq):
            raise _fail(path, node, f"expected a list, got {_describe(node)}")
        return [_Section(item, (*path, i), self.warnings) for i, item in enumerate(node.items)]

    def headers(self, key: str) -> dict[str, tuple[str, ...]]:
        section = self.section(key)
        out = {}
        for name in section.items:
            if not _HEADER_NAME.fullmatch(name):
                raise _fail((*section.path, name), section.items[name], "invalid header name")
            values = section.strings(name)
            if any("\r" in v or "\n" in v for v in values):
                raise _fail((*section.path, name), section.items[name], "line break in value")
            out[name] = values
        return out

    def url(self, key: str, required: bool = False) -> str:
        value = self.required(key) if required else self.text(key)
        try:
            parts = urlsplit(value)
            absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
        except ValueError:
            absolute = False
        if value and not absolute:
            raise _fail(
                (*self.path, key),
                self.here(key),
                f"expected an absolute http(s) URL, got {value!r}",
            )
        return value

    def address(self, key: str, default: str = "", required: bool = False) -> str:
        value = self.required(key) if required else self.text(key, default)
        if value:
            try:
                split_host_port(value)
            except ValueError as exc:
                raise _fail((*self.path, key), self.here(key), str(exc)) from None
        return value

    def done(self) -> None:
        for key, node in self.items.items():
            if key not in self.used:
                self.warnings.append(
                    f'unsupported configuration key "{_key((*self.path, key))}"{_at(node.where)}'
                )


def _build(root: _Map, warnings: list[str]) -> Config:
    top = _Section(root, (), warnings)
    version = top.raw("version")
    if version is None:
        raise ConfigError(
            'version: missing; a registry configuration starts with "version: 0.1"', "version"
        )
    if not isinstance(version, _Leaf) or version.text != "0.1":
        raise _fail(
            ("version",), version, f"unsupported version {_describe(version)}; expected 0.1"
        )
    storage = _storage(top.raw("storage"), warnings)
    http = _http(top.section("http"))
    redis = _redis(top.section("redis"))
    proxy = _proxy(top.section("proxy"))
    if storage.cache.blob_descriptor == "redis" and not redis.addr:
        raise ConfigError(
            "storage.cache.blobdescriptor: the redis cache needs redis.addr",
            "storage.cache.blobdescriptor",
        )
    if not http.secret and not proxy.remote_url:
        warnings.append(
            "http.secret is not set: a random secret will be generated at start, so uploads "
            "fail when they move between registry instances (set http.secret or "
            "REGISTRY_HTTP_SECRET)"
        )
    config = Config(
        log=_log(top),
        storage=storage,
        http=http,
        auth=_auth(top.raw("auth"), warnings),
        notifications=_notifications(top.section("notifications")),
        redis=redis,
        proxy=proxy,
        health=_health(top.section("health")),
        validation=_validation(top.section("validation")),
        compatibility=_compatibility(top.section("compatibility")),
        catalog=_catalog(top.section("catalog")),
    )
    _middleware(top.raw("middleware"), warnings)
    top.done()
    return config


def _log(top: _Section) -> LogConfig:
    s = top.section("log")
    levels = ("error", "warn", "info", "debug")
    level = top.choice("loglevel", levels, "info")  # deprecated, but still honoured
    if top.raw("loglevel") is not None:
        top.warnings.append(
            f'"loglevel" is deprecated: use "log.level"{_at(top.here("loglevel").where)}'
        )
    level = s.choice("level", levels, level)
    fields = s.raw("fields")
    if fields is not None and not isinstance(fields, _Map):
        raise _fail(("log", "fields"), fields, f"expected a mapping, got {_describe(fields)}")
    access = s.section("accesslog")
    result = LogConfig(
        level=cast(LogLevel, level),
        formatter=cast(LogFormatter, s.choice("formatter", ("text", "json", "logstash"), "text")),
        fields=_plain(fields) or {},
        access_log=AccessLogConfig(disabled=access.flag("disabled")),
    )
    access.done()
    s.done()
    return result


def _storage(node: _Node | None, warnings: list[str]) -> StorageConfig:
    path: _Path = ("storage",)
    drivers_list = ", ".join(STORAGE_DRIVERS)
    if node is None:
        raise _fail(path, None, f"missing; configure one storage driver: {drivers_list}")
    s = _Section(_expand_type_name(node), path, warnings)
    drivers = [k for k in s.items if k not in _STORAGE_SUBSECTIONS]
    if not drivers:
        raise _fail(path, node, f"no storage driver configured; expected one of {drivers_list}")
    if len(drivers) > 1:
        raise _fail(path, node, f"exactly one storage driver expected, got {', '.join(drivers)}")
    driver = drivers[0]
    params_node = s.raw(driver)
    if driver not in STORAGE_DRIVERS:
        raise _fail(
            (*path, driver),
            params_node or node,
            f"unsupported storage driver; expected one of {drivers_list}",
        )
    params: dict[str, Any] = {}
    if params_node is not None:
        if not isinstance(params_node, _Map):
            raise _fail(
                (*path, driver),
                params_node,
                f"expected a mapping of parameters, got {_describe(params_node)}",
            )
        for key, value in params_node.items.items():
            if key.lower() in params:
                raise _fail((*path, driver, key.lower()), value, "given twice (keys ignore case)")
            params[key.lower()] = _plain(value)

    delete = s.section("delete")
    redirect = s.section("redirect")
    cache = s.section("cache")
    maintenance = s.section("maintenance")
    purging = maintenance.section("uploadpurging")
    readonly = maintenance.section("readonly")
    tag = s.section("tag")

    kind = cache.text("blobdescriptor") if cache.raw("blobdescriptor") else cache.text("layerinfo")
    if kind not in ("", "inmemory", "redis"):
        warnings.append(
            f"storage.cache.blobdescriptor: unknown cache type {kind!r} (expected inmemory or "
            f"redis); caching disabled{_at(cache.where)}"
        )
        kind = ""
    size_node = cache.raw("blobdescriptorsize")
    size_text = size_node.text if isinstance(size_node, _Leaf) else ""
    if size_text.isascii() and size_text.isdigit():
        size = int(size_text)  # distribution takes "5000" as well
    else:
        size = cache.integer("blobdescriptorsize", 10000, minimum=1)
    if size < 1:
        raise _fail(
            (*path, "cache", "blobdescriptorsize"), size_node, f"must be at least 1, got {size}"
        )
    result = StorageConfig(
        driver=driver,
        parameters=params,
        delete=DeleteConfig(enabled=delete.flag("enabled")),
        redirect=RedirectConfig(disable=redirect.flag("disable")),
        cache=CacheConfig(
            blob_descriptor=cast(BlobDescriptorCache, kind),
            blob_descriptor_size=size,
        ),
        maintenance=MaintenanceConfig(
            upload_purging=UploadPurgingConfig(
                enabled=purging.flag("enabled", True),
                age=purging.duration("age", 168 * 3600.0),
                interval=purging.duration("interval", 24 * 3600.0),
                dry_run=purging.flag("dryrun"),
            ),
            read_only=ReadOnlyConfig(enabled=readonly.flag("enabled")),
        ),
        tag=TagConfig(concurrency_limit=tag.integer("concurrencylimit")),
    )
    for section in (delete, redirect, cache, purging, readonly, maintenance, tag, s):
        section.done()
    return result


def _http(s: _Section) -> HTTPConfig:
    net = s.choice("net", ("tcp", "tcp4", "tcp6", "unix"), "tcp")
    addr = s.required("addr") if net == "unix" else s.address("addr", ":5000")
    prefix = s.text("prefix").strip().strip("/")
    prefix = f"/{prefix}/" if prefix else ""
    tls = s.section("tls")
    cert, key = tls.text("certificate"), tls.text("key")
    if bool(cert) != bool(key):
        missing = "key" if cert else "certificate"
        given = "certificate" if cert else "key"
        raise _fail(
            ("http", "tls", missing), tls.here(given), f"required when http.tls.{given} is set"
        )
    http2 = s.section("http2")
    debug = s.section("debug")
    prometheus = debug.section("prometheus")
    prom_path = prometheus.text("path", "/metrics")
    if not prom_path.startswith("/"):
        raise _fail(
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
        workers=s.integer("workers", 1, minimum=1),
        limits=_http_limits(s.section("limits")),
    )
    for section in (tls, http2, prometheus, debug, s):
        section.done()
    return result


def _http_limits(s: _Section) -> HTTPLimitsConfig:
    defaults = HTTPLimitsConfig()
    timeouts = {
        key: s.duration(key, default)
        for key, default in (
            ("headertimeout", defaults.header_timeout), ("bodytimeout", defaults.body_timeout)
        )
    }
    for key, value in timeouts.items():
        if value <= 0:
            raise _fail(("http", "limits", key), s.here(key), "must be a positive duration")
    result = HTTPLimitsConfig(
        header_timeout=timeouts["headertimeout"],
        body_timeout=timeouts["bodytimeout"],
        max_header_bytes=s.integer("maxheaderbytes", defaults.max_header_bytes, minimum=1024),
        max_connections=s.integer("maxconnections", defaults.max_connections, minimum=1),
    )
    s.done()
    return result


def _auth(node: _Node | None, warnings: list[str]) -> AuthConfig | None:
    if node is None:
        return None
    s = _Section(_expand_type_name(node), ("auth",), warnings)
    if not s.items:
        return None
    if len(s.items) > 1:
        raise _fail(("auth",), node, f"exactly one auth type expected, got {', '.join(s.items)}")
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
            raise _fail(
                ("auth", "token", "rootcertbundle"),
                p.here("rootcertbundle"),
                "required (or auth.token.jwks)",
            )
    elif kind == "silly":
        result = SillyAuthConfig(realm=p.required("realm"), service=p.required("service"))
    else:
        raise _fail(
            ("auth", kind),
            s.items[kind],
            "unsupported auth type; expected htpasswd, token or silly",
        )
    p.done()
    return result


def _notifications(s: _Section) -> NotificationsConfig:
    endpoints = []
    for e in s.sequence("endpoints"):
        ignore = e.section("ignore")
        endpoints.append(
            EndpointConfig(
                name=e.required("name"),
                url=e.url("url", required=True),
                disabled=e.flag("disabled"),
                headers=e.headers("headers"),
                timeout=e.duration("timeout", 0.0) or 1.0,
                threshold=e.integer("threshold") or 10,
                backoff=e.duration("backoff", 0.0) or 1.0,
                ignored_media_types=e.strings("ignoredmediatypes"),
                ignore=IgnoreConfig(
                    media_types=ignore.strings("mediatypes"), actions=ignore.strings("actions")
                ),
            )
        )
        ignore.done()
        e.done()
    events = s.section("events")
    result = NotificationsConfig(
        endpoints=tuple(endpoints),
        events=EventsConfig(include_references=events.flag("includereferences")),
    )
    events.done()
    s.done()
    return result


def _redis(s: _Section) -> RedisConfig:
    pool = s.section("pool")
    tls = s.section("tls")
    result = RedisConfig(
        addr=s.address("addr"),
        password=s.text("password"),
        db=s.integer("db"),
        dial_timeout=s.duration("dialtimeout", 0.0),
        read_timeout=s.duration("readtimeout", 0.0),
        write_timeout=s.duration("writetimeout", 0.0),
        pool=RedisPoolConfig(
            max_idle=pool.integer("maxidle"),
            max_active=pool.integer("maxactive"),
            idle_timeout=pool.duration("idletimeout", 0.0),
        ),
        tls=RedisTLSConfig(enabled=tls.flag("enabled")),
    )
    for section in (pool, tls, s):
        section.done()
    return result


def _proxy(s: _Section) -> ProxyConfig:
    result = ProxyConfig(
        remote_url=s.url("remoteurl"),
        username=s.text("username"),
        password=s.text("password"),
        ttl=s.duration("ttl", 168 * 3600.0),
    )
    s.done()
    return result


def _health(s: _Section) -> HealthConfig:
    sd = s.section("storagedriver")
    files, https, tcps = [], [], []
    for c in s.sequence("file"):
        files.append(
            FileCheckerConfig(
                file=c.required("file"),
                interval=c.duration("interval", 0.0) or 10.0,
                threshold=c.integer("threshold"),
            )
        )
        c.done()
    for c in s.sequence("http"):
        https.append(
            HTTPCheckerConfig(
                uri=c.url("uri", required=True),
                headers=c.headers("headers"),
                status_code=c.integer("statuscode") or 200,
                timeout=c.duration("timeout", 0.0),
                interval=c.duration("interval", 0.0) or 10.0,
                threshold=c.integer("threshold"),
            )
        )
        c.done()
    for c in s.sequence("tcp"):
        tcps.append(
            TCPCheckerConfig(
                addr=c.address("addr", required=True),
                timeout=c.duration("timeout", 0.0),
                interval=c.duration("interval", 0.0) or 10.0,
                threshold=c.integer("threshold"),
            )
        )
        c.done()
    result = HealthConfig(
        storage_driver=StorageDriverCheckerConfig(
            enabled=sd.flag("enabled"),
            interval=sd.duration("interval", 0.0) or 10.0,
            threshold=sd.integer("threshold"),
        ),
        file_checkers=tuple(files),
        http_checkers=tuple(https),
        tcp_checkers=tuple(tcps),
    )
    sd.done()
    s.done()
    return result


def _patterns(s: _Section, key: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for i, pattern in enumerate(s.strings(key)):
        try:
            out.append(re.compile(pattern))
        except re.error as exc:
            node = s.items[key]
            assert isinstance(node, _Seq)
            raise _fail(
                (*s.path, key, i), node.items[i], f"invalid regular expression {pattern!r}: {exc}"
            ) from None
    return tuple(out)


def _validation(s: _Section) -> ValidationConfig:
    manifests = s.section("manifests")
    urls = manifests.section("urls")
    disabled, enabled = s.flag("disabled"), s.flag("enabled")
    result = ValidationConfig(
        disabled=disabled and not enabled,
        manifests=ManifestValidationConfig(
            urls=URLValidationConfig(allow=_patterns(urls, "allow"), deny=_patterns(urls, "deny"))
        ),
    )
    for section in (urls, manifests, s):
        section.done()
    return result


def _compatibility(s: _Section) -> CompatibilityConfig:
    schema1 = s.section("schema1")
    result = CompatibilityConfig(
        schema1=Schema1Config(
            signing_key_file=schema1.text("signingkeyfile"), enabled=schema1.flag("enabled")
        )
    )
    schema1.done()
    s.done()
    return result


def _catalog(s: _Section) -> CatalogConfig:
    entries = s.integer("maxentries", 1000, minimum=-(2**63))
    result = CatalogConfig(max_entries=entries if entries > 0 else 1000)  # as distribution
    s.done()
    return result


def _middleware(node: _Node | None, warnings: list[str]) -> None:
    if node is None:
        return
    if not isinstance(node, _Map):
        warnings.append(f'unsupported configuration key "middleware"{_at(node.where)}')
        return
    for kind, entries in node.items.items():
        if _is_null(entries) or (isinstance(entries, _Seq) and not entries.items):
            continue
        names = [
            str(_plain(e.items.get("name")))
            for e in (entries.items if isinstance(entries, _Seq) else [])
            if isinstance(e, _Map) and "name" in e.items
        ]
        warnings.append(
            f"middleware.{kind}: dockyard supports no middleware; ignoring "
            f"{', '.join(names) or 'the entries'}{_at(entries.where)}"
        )


# ---------------------------------------------------------------------------
# Entry point


def _default_document() -> str:
    """distribution's stock config.yml, with a local data folder and deletes off."""
    return yaml.safe_dump(
        {
            "version": "0.1",
            "log": {"fields": {"service": "registry"}},
            "storage": {
                "cache": {"blobdescriptor": "inmemory"},
                "filesystem": {"rootdirectory": os.path.abspath("registry-data")},
                "delete": {"enabled": False},
            },
            "http": {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
        },
        sort_keys=False,
    )


def load_config(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[Config, list[str]]:
    """Read ``path`` (or the embedded default if None), apply ``environ``, validate.

    Returns the settings and the warnings to report at start (unsupported keys, a
    missing ``http.secret``...). Raises :class:`ConfigError` naming the key.
    """
    warnings: list[str] = []
    if path is None:
        text, source = _default_document(), ""
    else:
        source = os.fspath(path)
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the configuration: {exc}") from None
    tree = _Reader(source, False, warnings).read(text)
    if tree is None or _is_null(tree):
        tree = _Map({}, "")
    if not isinstance(tree, _Map):
        raise ConfigError(f"configuration: expected a mapping of sections, got {_describe(tree)}")
    for key in ("storage", "auth"):  # so that overrides can reach into `storage: inmemory`
        if key in tree.items:
            tree.items[key] = _expand_type_name(tree.items[key])
    _apply_env(tree, environ, warnings)
    return _build(tree, warnings), warnings
