"""Run the registry: one process, or N forked workers sharing one listening socket.

The parent binds the socket, then forks; the kernel hands each connection to one
worker. Workers share nothing but storage and the upload-token secret, which is
fixed before the fork so any worker can continue any upload.

:func:`serve` is the start: it checks the configuration, prepares the index, fixes the
secret (:mod:`~dockyard.uploadsecret`), binds the sockets (:mod:`~dockyard.listeners`)
and hands over to the process model (:mod:`~dockyard.workers`). What a worker serves is
built from the configuration in :mod:`~dockyard.assembly` (re-exported here).
"""

from __future__ import annotations

import asyncio
import logging

from dockyard import __version__
from dockyard.assembly import (
    Worker,
    build_access,
    build_cache,
    build_context,
    build_index,
    build_namespace,
    build_redis_cache,
    build_upload_locks,
    check_config,
    default_workers,
    storage_location,
    unsupported_features,
    worker_count,
)
from dockyard.config import Config, refuse_unknown_keys
from dockyard.listeners import bind_debug, bind_listener
from dockyard.logs import setup_logging
from dockyard.notifying import check_spool
from dockyard.storage.drivers.factory import create_driver
from dockyard.tls import server_ssl_context
from dockyard.uploadsecret import upload_secret
from dockyard.workers import run_worker, supervise

# What other modules import from here (the builders now live in dockyard.assembly).
__all__ = [
    "build_access",
    "build_cache",
    "build_context",
    "build_index",
    "build_namespace",
    "build_redis_cache",
    "build_upload_locks",
    "check_config",
    "default_workers",
    "serve",
    "storage_location",
    "unsupported_features",
]

log = logging.getLogger("dockyard")


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
    secret = upload_secret(config)  # before the fork: every worker shares it
    ssl_context = server_ssl_context(config.http.tls)
    sock, where = bind_listener(config)
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
    debug_sock = bind_debug(config)
    if count == 1:
        return run_worker(config, secret, sock, Worker(), debug_sock=debug_sock)
    if debug_sock is None or not config.http.debug.prometheus.enabled:
        return supervise(config, secret, sock, count, debug_sock)
    from dockyard.metrics.multiproc import prepare_snapshot_dir, remove_snapshot_dir

    metrics_dir = prepare_snapshot_dir()  # where the workers' metrics meet for one scrape
    try:
        return supervise(config, secret, sock, count, debug_sock, metrics_dir)
    finally:
        remove_snapshot_dir(metrics_dir)


def _describe_storage(config: Config) -> str:
    storage = config.storage
    cache = storage.cache.blob_descriptor or "no"
    flags = [
        f"delete {'enabled' if storage.delete.enabled else 'disabled'}",
        f"{cache} blob descriptor cache",
        *(["read-only"] if storage.maintenance.read_only.enabled else []),
    ]
    return f"storage: {storage_location(config)} ({', '.join(flags)})"


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
