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
    distribution). Every key that is not modelled here is reported as a warning,
    never silently ignored: ``unsupported configuration key "a.b.c" ...: supported by
    distribution but not by dockyard`` for distribution's keys, else ``unknown
    configuration key "a.b.c" ...; did you mean "a.b.d"?`` (an
    :class:`UnknownKeyWarning`, which ``--strict`` refuses). The parameters of a
    storage driver and ``log.fields`` are free-form (the object-store drivers
    validate their own parameters; filesystem's are checked here). ``path=None``
    uses the embedded default: the stock ``config.yml`` of distribution, with
    filesystem storage rooted at ``./registry-data`` (made absolute against the
    current directory) and deletes disabled; without ``http.secret`` it keeps a
    generated one in ``registry-data/http.secret`` (``http.secret_file``).

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
    * dockyard extension: ``ui.enabled`` (default true) serves the web UI at
      ``<http.prefix>/ui/`` (see :mod:`dockyard.ui`).
    * dockyard extension: ``notifications.spool`` (``directory``, ``maxevents``)
      keeps queued events on disk across restarts (:class:`SpoolConfig`).
    * dockyard extension: ``http.workers`` (integer >= 1; by default one per
      CPU, and 1 for the ``inmemory`` driver) is the number of worker processes
      serving ``http.addr``; ``http.limits`` (timeouts, header
      size, connection cap: see :class:`HTTPLimitsConfig`) guards against slow or
      hostile clients.
    * Sections that dockyard models are parsed even where the server does not
      implement them yet; the server decides what to warn about. Sections it does
      not model (``reporting``, ``policy``, ``log.hooks``, ``http.tls.letsencrypt``,
      ``token_server``...) and non-empty ``middleware.registry``/``repository`` lists
      are warnings; ``middleware.storage`` is read (:class:`MiddlewareConfig`).

Modules
    :mod:`~dockyard.config.load` reads (``load_config``): :mod:`~.reader` turns YAML
    into a raw tree (:mod:`~.tree`) that keeps each value's file and line,
    :mod:`~.env` applies the overrides, and :mod:`~.model` (``Config``) is built from
    one module per top-level section (:mod:`~.storage`, :mod:`~.http`, :mod:`~.auth`,
    :mod:`~.log`, :mod:`~.redis`, :mod:`~.notifications`, :mod:`~.proxy`,
    :mod:`~.health`, :mod:`~.validation`, :mod:`~.compatibility`, :mod:`~.catalog`,
    :mod:`~.middleware`, :mod:`~.ui`), each holding its dataclasses and the function that
    reads them with a :class:`~.section.Section`. A new section gets its own module, a field
    in ``Config`` and a line in ``load._build``.

The returned :class:`Config` is picklable, so it can be handed to worker processes.
Mappings inside it are plain dicts: treat them as read-only.
"""

from __future__ import annotations

from dockyard.config.auth import AuthConfig, HtpasswdAuthConfig, SillyAuthConfig, TokenAuthConfig
from dockyard.config.catalog import CatalogConfig
from dockyard.config.compatibility import CompatibilityConfig, Schema1Config
from dockyard.config.health import (
    FileCheckerConfig,
    HealthConfig,
    HTTPCheckerConfig,
    StorageDriverCheckerConfig,
    TCPCheckerConfig,
)
from dockyard.config.http import (
    DebugConfig,
    HTTP2Config,
    HTTPConfig,
    HTTPLimitsConfig,
    PrometheusConfig,
    TLSConfig,
)
from dockyard.config.load import load_config
from dockyard.config.log import AccessLogConfig, LogConfig
from dockyard.config.middleware import MiddlewareConfig, MiddlewareEntry
from dockyard.config.model import Config
from dockyard.config.notifications import (
    EndpointConfig,
    EventsConfig,
    IgnoreConfig,
    NotificationsConfig,
    SpoolConfig,
)
from dockyard.config.proxy import ProxyConfig, UpstreamConfig
from dockyard.config.redis import RedisConfig, RedisPoolConfig, RedisTLSConfig
from dockyard.config.section import UnknownKeyWarning, refuse_unknown_keys
from dockyard.config.storage import (
    CacheConfig,
    DeleteConfig,
    MaintenanceConfig,
    ReadOnlyConfig,
    RedirectConfig,
    StorageConfig,
    TagConfig,
    UploadPurgingConfig,
)
from dockyard.config.tree import ConfigError
from dockyard.config.ui import UIConfig
from dockyard.config.validation import (
    ManifestValidationConfig,
    URLValidationConfig,
    ValidationConfig,
)
from dockyard.config.values import parse_duration, split_host_port

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
    "MiddlewareConfig",
    "MiddlewareEntry",
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
    "SpoolConfig",
    "StorageConfig",
    "StorageDriverCheckerConfig",
    "TCPCheckerConfig",
    "TLSConfig",
    "TagConfig",
    "TokenAuthConfig",
    "UIConfig",
    "URLValidationConfig",
    "UnknownKeyWarning",
    "UploadPurgingConfig",
    "UpstreamConfig",
    "ValidationConfig",
    "load_config",
    "parse_duration",
    "refuse_unknown_keys",
    "split_host_port",
]
