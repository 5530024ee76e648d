"""Run the registry: one process, or N forked workers sharing one listening socket.

The parent binds the socket, then forks; the kernel hands each connection to one
worker. Workers share nothing but storage and the upload-token secret, which is
fixed before the fork so any worker can continue any upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from dockyard import __version__
from dockyard.api.app import create_app
from dockyard.api.context import AppContext, UrlSettings
from dockyard.api.state import UploadStateSigner
from dockyard.auth import AccessController, build_access_controller
from dockyard.background import (
    build_fence,
    build_immutable_tags,
    build_lease,
    build_retention_policies,
    start_maintenance_jobs,
)
from dockyard.cache.base import BlobDescriptorCache, SafeCache
from dockyard.cache.memory import MemoryCache
from dockyard.config import (
    Config,
    ConfigError,
    HtpasswdAuthConfig,
    SillyAuthConfig,
    TokenAuthConfig,
    refuse_unknown_keys,
    split_host_port,
)
from dockyard.connections import GuardedAppRunner
from dockyard.debugserver import Instruments, build_health, build_metrics, instrument_app
from dockyard.index import IndexUnavailable, SqlIndex, open_index
from dockyard.logs import AccessLogger, setup_logging
from dockyard.maintenance.jobs import Lease
from dockyard.notifying import build_notifier, check_spool, debug_vars, export_metrics
from dockyard.proxy import ProxyNamespace, RemoteRegistry, Upstream
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage.drivers.base import CheckedDriver, StorageDriver
from dockyard.storage.drivers.factory import create_driver
from dockyard.storage.drivers.observed import ObservedDriver
from dockyard.storage.uploadlocks import UploadLocks
from dockyard.tls import server_ssl_context
from dockyard.tracing import start_tracing

__all__ = [
    "build_context", "build_index", "default_workers", "serve", "unsupported_features",
]

if TYPE_CHECKING:
    from dockyard.cache.redis import RedisCache
    from dockyard.metrics import Metrics

log = logging.getLogger("dockyard")


@dataclass(frozen=True, slots=True)
class Worker:
    """One of ``count`` worker processes of an instance; worker 0 runs scheduled jobs."""

    index: int = 0
    count: int = 1

    @property
    def primary(self) -> bool:
        return self.index == 0

_PR_SET_PDEATHSIG = 1


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
    if metrics is not None:
        from dockyard.metrics.cache import CountingCache

        inner = CountingCache(inner, metrics)
    return SafeCache(inner, name)


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
    observe = instruments.storage_observer(driver.name) if instruments else None
    if observe is not None:
        # Inside the path checks: only calls that reach the backend are observed.
        driver = CheckedDriver(ObservedDriver(driver.inner, observe))
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


def _describe_storage(config: Config) -> str:
    storage = config.storage
    cache = storage.cache.blob_descriptor or "no"
    flags = [
        f"delete {'enabled' if storage.delete.enabled else 'disabled'}",
        f"{cache} blob descriptor cache",
        *(["read-only"] if storage.maintenance.read_only.enabled else []),
    ]
    return f"storage: {storage_location(config)} ({', '.join(flags)})"


def _bind(config: Config) -> tuple[socket.socket, str]:
    http = config.http
    if http.net == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(http.addr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _bind_to(sock, http.addr, f"unix:{http.addr}")
        where = f"unix:{http.addr}"
    else:
        host, port = split_host_port(http.addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        _bind_to(sock, (host, port), address)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        where = f"http://{shown}:{bound_port}{http.prefix.rstrip('/')}"
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock, where


def _bind_to(sock: socket.socket, address: str | tuple[str, int], shown: str) -> None:
    """``sock.bind``, failing with an OSError that names the address (no errno noise)."""
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"address {shown} already in use") from None
        raise OSError(f"cannot listen on {shown}: {exc.strerror or exc}") from None


def _upload_secret(config: Config) -> bytes:
    """The key of upload-state tokens: ``http.secret``; else the one kept in
    ``http.secret_file`` (generated there on first start); else a random one (the
    configuration warned that uploads then stay with this instance and start)."""
    http = config.http
    if http.secret:
        return http.secret.encode()
    if http.secret_file:
        return _kept_secret(http.secret_file)
    return secrets.token_bytes(32)


def _kept_secret(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except FileNotFoundError:
        pass
    else:
        if not secret:
            raise ConfigError(
                f"http.secret: {path} is empty; delete it for a new one or set http.secret",
                "http.secret",
            )
        log.info("http.secret: not set; using the one kept in %s", path)
        return secret
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Written whole under a temporary name, then linked into place: a start racing
    # this one reads either no file or the complete secret, never a partial one.
    partial = f"{path}.{os.getpid()}.tmp"
    secret = secrets.token_hex(32).encode()
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(secret + b"\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(partial, path)
    except FileExistsError:
        return _kept_secret(path)
    finally:
        os.unlink(partial)
    log.info(
        "http.secret: not set; generated one in %s (mode 0600), kept for restarts and "
        "workers; several instances must set the same http.secret instead",
        path,
    )
    return secret


def serve(
    config: Config, warnings: list[str], workers: int | None = None, *, strict: bool = False
) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code.

    With ``strict``, unknown configuration keys (logged like every warning) refuse
    the start with a ConfigError.
    """
    setup_logging(config.log.level, config.log.formatter, config.log.fields)
    for warning in warnings:
        log.warning("config: %s", warning)
    for warning in unsupported_features(config):
        log.warning("config: %s", warning)
    if strict:
        refuse_unknown_keys(warnings)
    count = worker_count(config, workers)
    check_config(config, workers)
    check_spool(config)  # makes the directory: at start only, not in check-config
    _prepare_index(config)  # before the fork: one build, not one per worker
    secret = _upload_secret(config)  # before the fork: every worker shares it
    ssl_context = server_ssl_context(config.http.tls)
    sock, where = _bind(config)
    if ssl_context is not None:
        where = where.replace("http://", "https://", 1)
    if config.auth is not None:
        log.info("access control: %s", type(config.auth).__name__.removesuffix("AuthConfig"))
    log.info("dockyard %s starting; %s", __version__, _describe_storage(config))
    if config.proxy.remote_url:
        log.info("pull-through cache of %s (every repository)", config.proxy.remote_url)
    for upstream in config.proxy.upstreams:
        log.info("pull-through cache of %s under %s/", upstream.remote_url, upstream.prefix)
    log.info("listening on %s with %d worker%s", where, count, "s" if count > 1 else "")
    debug_sock = _bind_debug(config)
    if count == 1:
        return _run_worker(config, secret, sock, Worker(), debug_sock=debug_sock)
    if debug_sock is None or not config.http.debug.prometheus.enabled:
        return _supervise(config, secret, sock, count, debug_sock)
    from dockyard.metrics.multiproc import prepare_snapshot_dir, remove_snapshot_dir

    metrics_dir = prepare_snapshot_dir()  # where the workers' metrics meet for one scrape
    try:
        return _supervise(config, secret, sock, count, debug_sock, metrics_dir)
    finally:
        remove_snapshot_dir(metrics_dir)


def _bind_debug(config: Config) -> socket.socket | None:
    """The debug listener's socket (``http.debug.addr``), bound before any worker starts."""
    debug = config.http.debug
    if not debug.addr:
        return None
    host, port = split_host_port(debug.addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    _bind_to(sock, (host, port), f"http.debug.addr {debug.addr}")
    sock.listen(128)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    served = ["/debug/health", "/debug/vars"]
    if debug.prometheus.enabled:
        served.append(debug.prometheus.path)
    log.info("debug server listening on http://%s:%d (%s)", shown, bound_port, ", ".join(served))
    return sock


def _prepare_index(config: Config) -> None:
    """Migrate the index and build it from storage when it is empty (or rebuildonstart)."""
    index = build_index(config)
    if index is None:
        log.info("index: none (listings walk storage)")
        return
    log.info("index: %s", index.where)
    from dockyard.index.maintain import build_if_empty

    driver = create_driver(config.storage.driver, config.storage.parameters)

    async def prepare() -> None:
        try:
            await build_if_empty(index, driver, force=config.storage.index.rebuild_on_start)
        finally:
            await index.aclose()
            await driver.aclose()

    asyncio.run(prepare())


def _supervise(
    config: Config, secret: bytes, sock: socket.socket, count: int,
    debug_sock: socket.socket | None = None, metrics_dir: str | None = None,
) -> int:
    children: dict[int, int] = {}
    stopping = False

    parent = os.getpid()

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _die_with_parent(parent)
                own_debug = debug_sock if index == 0 else None  # the debug server: worker 0
                if debug_sock is not None and own_debug is None:
                    debug_sock.close()
                code = _run_worker(config, secret, sock, Worker(index, count),
                                   debug_sock=own_debug, metrics_dir=metrics_dir)
            finally:
                os._exit(code)
        children[pid] = index

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        spawn(index)
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        index = children.pop(pid)
        if not stopping:
            log.error("worker %d (pid %d) exited with status %d; restarting", index, pid, status)
            time.sleep(0.5)
            spawn(index)
        elif os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM):
            code = 1
    log.info("stopped")
    return code


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies (even by SIGKILL).

    Otherwise orphaned workers keep the port and a restart fails to bind.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (AttributeError, OSError):  # not Linux: the supervisor's SIGTERM still works
        return
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(0)


def _run_worker(
    config: Config, secret: bytes, sock: socket.socket, worker: Worker,
    debug_sock: socket.socket | None = None, metrics_dir: str | None = None,
) -> int:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_worker(config, secret, sock, worker, debug_sock, metrics_dir))
    return 0


async def _worker(
    config: Config, secret: bytes, sock: socket.socket, worker: Worker,
    debug_sock: socket.socket | None = None, metrics_dir: str | None = None,
) -> None:
    instruments = Instruments(metrics=build_metrics(config, metrics_dir),
                              tracing=start_tracing())
    ctx = build_context(config, secret, instruments, worker)
    # Worker ``worker.index`` of ``worker.count`` owns its own event spools
    # (dockyard.notifying).
    notifier = await asyncio.to_thread(build_notifier, config, worker.index, worker.count)
    exporter = None
    if notifier is not None:
        ctx = dataclasses.replace(ctx, notifier=notifier)
        notifier.start()
        instruments.add_vars("notifications", lambda: debug_vars(notifier))
        if instruments.metrics is not None:
            exporter = asyncio.get_running_loop().create_task(
                export_metrics(notifier, instruments.metrics), name="notification-metrics")
    if ctx.namespace.index is not None:
        await ctx.namespace.index.migrate()  # applied already; creates an in-memory one
    if ctx.namespace.fence is not None:
        await ctx.namespace.fence.prepare()
    app = create_app(ctx)
    if isinstance(ctx.namespace, ProxyNamespace):
        ctx.namespace.install(app)
    instruments.health = build_health(config, ctx.namespace.driver)
    instrument_app(app, instruments)
    access_log = None if config.log.access_log.disabled else logging.getLogger("dockyard.access")
    runner = GuardedAppRunner(
        app,
        config.http.limits,
        access_log=access_log,
        shutdown_timeout=config.http.drain_timeout or 5.0,
        access_log_class=AccessLogger,
    )
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=server_ssl_context(config.http.tls))
    await site.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    # Scheduled jobs run in one worker only: N purgers would walk storage N times.
    purger = _start_upload_purger(config, ctx) if worker.primary else None
    jobs = start_maintenance_jobs(config, ctx, _lease(config, ctx)) if worker.primary else []
    await instruments.start(config, debug_sock)
    try:
        await stopped.wait()
    finally:
        await instruments.stop()
        for task in [*jobs, *([purger] if purger is not None else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        if notifier is not None:
            await notifier.close()
        if exporter is not None:
            exporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await exporter
        if ctx.namespace.index is not None:
            await ctx.namespace.index.aclose()
        await ctx.namespace.driver.aclose()
        if ctx.namespace.locks is not None:
            await ctx.namespace.locks.aclose()
        sys.stderr.flush()


def _lease(config: Config, ctx: AppContext) -> Lease:
    index = ctx.namespace.index if isinstance(ctx.namespace.index, SqlIndex) else None
    redis = build_redis_cache(config).client if config.redis.addr and index is None else None
    return build_lease(index, redis)


def _start_upload_purger(config: Config, ctx: AppContext) -> asyncio.Task[None] | None:
    """storage.maintenance.uploadpurging, one purger per instance (dockyard.maintenance.purge)."""
    settings = config.storage.maintenance.upload_purging
    if not settings.enabled:
        log.info("upload purging: disabled (storage.maintenance.uploadpurging.enabled)")
        return None
    if config.storage.maintenance.read_only.enabled:
        log.info("upload purging: off while storage.maintenance.readonly is enabled")
        return None
    from dockyard.maintenance.purge import run_upload_purger

    return asyncio.get_running_loop().create_task(
        run_upload_purger(
            ctx.namespace.driver,
            age=settings.age,
            interval=settings.interval,
            dry_run=settings.dry_run,
        ),
        name="upload-purger",
    )
