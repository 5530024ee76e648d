"""The registry assembled from its configuration: the storage driver, caches, metadata
index and upload locks, the namespace over them, the access controller, and the
application context a worker serves (:func:`build_context`); :func:`check_config`
builds (and drops) all of it so that a bad setting fails before the start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.api.context import AppContext, UrlSettings
from dockyard.api.state import UploadStateSigner
from dockyard.auth import AccessController, build_access_controller
from dockyard.background import build_fence, build_immutable_tags, build_retention_policies
from dockyard.cache.base import BlobDescriptorCache, SafeCache
from dockyard.cache.memory import MemoryCache
from dockyard.config import (
    Config,
    ConfigError,
    HtpasswdAuthConfig,
    SillyAuthConfig,
    TokenAuthConfig,
)
from dockyard.debugserver import Instruments
from dockyard.index import IndexUnavailable, SqlIndex, open_index
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage.drivers.base import CheckedDriver, StorageDriver
from dockyard.storage.drivers.factory import create_driver
from dockyard.storage.drivers.observed import ObservedDriver, TimedDriver
from dockyard.storage.uploadlocks import UploadLocks
from dockyard.tls import server_ssl_context

__all__ = [
    "Worker",
    "build_access",
    "build_cache",
    "build_context",
    "build_index",
    "build_namespace",
    "build_redis_cache",
    "build_upload_locks",
    "check_config",
    "default_workers",
    "storage_location",
    "unsupported_features",
]


@dataclass(frozen=True, slots=True)
class Worker:
    """One of ``count`` worker processes of an instance; worker 0 runs scheduled jobs."""

    index: int = 0
    count: int = 1

    @property
    def primary(self) -> bool:
        return self.index == 0


def default_workers(config: Config) -> int:
    """Worker processes when neither ``--workers`` nor ``http.workers`` says: one per CPU
    this process may run on (its affinity, as Go's GOMAXPROCS), but 1 for the inmemory
    driver, whose state cannot be shared between processes."""
    if config.storage.driver == "inmemory":
        return 1
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(config: Config, workers: int | None = None) -> int:
    """``--workers``, else ``http.workers``, else :func:`default_workers`."""
    return workers or config.http.workers or default_workers(config)

if TYPE_CHECKING:
    from dockyard.cache.redis import RedisCache
    from dockyard.metrics import Metrics


def unsupported_features(config: Config) -> list[str]:
    """Configured keys this version does not act on yet, so they are never silently ignored."""
    found = []
    if config.http.debug.prometheus.enabled and not config.http.debug.addr:
        found.append("http.debug.prometheus.enabled: no effect without http.debug.addr"
                     " (metrics are served by the debug listener)")
    return found


def build_access(config: Config) -> AccessController | None:
    """The access controller ``auth`` configures, or None for an open registry."""
    auth = config.auth
    options: dict[str, object]
    if auth is None:
        return None
    if isinstance(auth, HtpasswdAuthConfig):
        kind, options = "htpasswd", {"realm": auth.realm, "path": auth.path}
    elif isinstance(auth, TokenAuthConfig):
        kind, options = "token", {
            "realm": auth.realm, "service": auth.service, "issuer": auth.issuer,
            "autoredirect": auth.auto_redirect,
            **({"rootcertbundle": auth.root_cert_bundle} if auth.root_cert_bundle else {}),
            **({"jwks": auth.jwks} if auth.jwks else {}),
        }
    elif isinstance(auth, SillyAuthConfig):
        kind, options = "silly", {"realm": auth.realm, "service": auth.service}
    else:  # pragma: no cover - the config module knows no other kind
        raise ConfigError(f"auth: unsupported kind {type(auth).__name__}", "auth")
    try:
        return build_access_controller(kind, options)
    except ValueError as exc:
        message = str(exc)
        if not message.startswith("auth."):
            message = f"auth.{kind}: {message}"
        raise ConfigError(message, f"auth.{kind}") from None


def build_redis_cache(config: Config) -> RedisCache:
    """The Redis blob-descriptor cache the ``redis`` section describes (not yet connected)."""
    try:
        from dockyard.cache.redis import RedisCache
    except ImportError:
        raise ConfigError(
            "storage.cache.blobdescriptor: redis needs the redis package"
            " (pip install 'dockyard[redis]')", "storage.cache.blobdescriptor",
        ) from None
    r = config.redis
    return RedisCache.from_settings(
        r.addr, password=r.password, db=r.db, dial_timeout=r.dial_timeout,
        read_timeout=r.read_timeout, write_timeout=r.write_timeout,
        max_connections=r.pool.max_active, tls=r.tls.enabled,
    )


def build_cache(config: Config, metrics: Metrics | None = None) -> BlobDescriptorCache | None:
    """``storage.cache.blobdescriptor``: in-memory, Redis (the ``redis`` section) or none.

    With ``metrics``, lookups are counted (``registry_storage_cache_*``).
    """
    kind = config.storage.cache.blob_descriptor
    inner: BlobDescriptorCache
    if kind == "inmemory":
        inner, name = MemoryCache(config.storage.cache.blob_descriptor_size), "inmemory"
    elif kind == "redis":
        inner, name = build_redis_cache(config), f"redis at {config.redis.addr}"
    else:
        return None
    if metrics is None:
        return SafeCache(inner, name)
    from dockyard.metrics.cache import cache_counts

    return SafeCache(inner, name, cache_counts(metrics))


def build_upload_locks(config: Config) -> UploadLocks | None:
    """With ``redis.addr``, upload writers take a lock with a lease there (storage claims
    otherwise): cheaper on object stores than a claim's write, list and delete."""
    if not config.redis.addr:
        return None
    try:
        from dockyard.storage.redislocks import RedisUploadLocks
    except ImportError:
        raise ConfigError(
            "redis.addr: upload locks in Redis need the redis package"
            " (pip install 'dockyard[redis]')", "redis.addr",
        ) from None
    return RedisUploadLocks(build_redis_cache(config).client)


def check_config(config: Config, workers: int | None = None) -> None:
    """Build (and drop) what a worker builds, so bad settings fail before the start.

    Raises ConfigError or DriverConfigError naming the key; no backend is contacted.
    """
    storage = config.storage
    if worker_count(config, workers) > 1 and storage.driver == "inmemory":
        raise ConfigError(
            "http.workers: the inmemory driver cannot be shared by several workers", "http.workers"
        )
    create_driver(
        storage.driver, storage.parameters, redirect=not storage.redirect.disable,
        middleware=config.middleware.storage,
    )
    build_fence(config, build_index(config))
    build_access(config)
    build_immutable_tags(config)
    build_retention_policies(config)
    server_ssl_context(config.http.tls)


def build_index(config: Config) -> SqlIndex | None:
    """The metadata index ``storage.index`` configures (not migrated yet), or None.

    A pull-through cache writes what it fetches straight to storage, so its
    listings walk storage (``none``) whatever is configured.
    """
    storage, settings = config.storage, config.storage.index
    if config.proxy.enabled:
        return None
    try:
        return open_index(
            settings.driver, storage.driver, storage.parameters,
            path=settings.path, dsn=settings.dsn, pool_size=settings.pool_size,
        )
    except IndexUnavailable as exc:
        key = str(exc).split(":", 1)[0]
        raise ConfigError(str(exc), key) from None


def build_namespace(
    config: Config, driver: StorageDriver, options: RegistryOptions,
    metrics: Metrics | None = None, worker: Worker | None = None,
) -> Namespace:
    """The registry's repositories: hosted, or a pull-through cache with ``proxy.remoteurl``.

    ``worker``: which of this instance's worker processes builds it (None: the only one).
    """
    cache = build_cache(config, metrics)
    locks = build_upload_locks(config)
    proxy = config.proxy
    if not proxy.enabled:
        index = build_index(config)
        return Namespace(driver, options, cache=cache, index=index, locks=locks,
                         fence=build_fence(config, index))
    # Imported only for a pull-through cache: a registry without one keeps the memory.
    from dockyard.proxy import ProxyNamespace, RemoteRegistry, Upstream

    if proxy.remote_url:
        remote = RemoteRegistry(proxy.remote_url, proxy.username, proxy.password)
        upstreams = [Upstream("", remote, proxy.ttl)]
    else:
        upstreams = [
            Upstream(u.prefix, RemoteRegistry(u.remote_url, u.username, u.password), u.ttl,
                     u.namespace)
            for u in proxy.upstreams
        ]
    worker = worker or Worker()
    return ProxyNamespace(
        driver, options, upstreams, cache=cache, locks=locks, primary=worker.primary,
        workers=worker.count,
    )


def build_context(
    config: Config, secret: bytes, instruments: Instruments | None = None,
    worker: Worker | None = None,
) -> AppContext:
    """Everything the application needs, from the configuration.

    With ``instruments`` (metrics, tracing), storage calls and cache lookups are observed.
    ``worker``: which of this instance's worker processes builds it (None: the only one).
    """
    storage = config.storage
    driver = create_driver(
        storage.driver, storage.parameters, redirect=not storage.redirect.disable,
        middleware=config.middleware.storage,
    )
    if instruments is not None:
        # Inside the path checks: only calls that reach the backend are observed. The
        # timing wrapper is the path checker too (a wrapper fewer on every call).
        inner = driver.inner
        observe = instruments.storage_observer(driver.name)
        if observe is not None:
            inner = ObservedDriver(inner, observe)
        timings = instruments.storage_timings(driver.name)
        if timings is not None:
            driver = TimedDriver(inner, timings)
        elif inner is not driver.inner:
            driver = CheckedDriver(inner)
    metrics = instruments.metrics if instruments else None
    urls_validation = config.validation.manifests.urls
    options = RegistryOptions(
        delete_enabled=storage.delete.enabled,
        read_only=storage.maintenance.read_only.enabled,
        validation_disabled=config.validation.disabled,
        urls_allow=urls_validation.allow,
        urls_deny=urls_validation.deny,
        immutable_tags=build_immutable_tags(config),
    )
    urls = UrlSettings(
        host=config.http.host or None,
        relative=config.http.relative_urls,
        prefix=config.http.prefix or "/",
    )
    return AppContext(
        namespace=build_namespace(config, driver, options, metrics, worker),
        signer=UploadStateSigner(secret),
        urls=urls,
        headers=dict(config.http.headers),
        catalog_max_entries=config.catalog.max_entries,
        access=build_access(config),
        body_timeout=config.http.limits.body_timeout,
        min_body_rate=config.http.limits.min_body_rate,
        ui_enabled=config.ui.enabled,
    )


def storage_location(config: Config) -> str:
    """The storage for people: ``filesystem at /abs/root``, ``s3``..."""
    storage = config.storage
    if storage.driver == "filesystem":
        root = storage.parameters.get("rootdirectory") or "/var/lib/registry"
        return f"filesystem at {os.path.abspath(str(root))}"
    return storage.driver
