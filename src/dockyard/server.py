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
import contextlib
import faulthandler
import logging
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable

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
from dockyard.workers import die_with_parent, run_worker, supervise

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
    # A crash in native code (SIGSEGV, SIGBUS, an abort in a library) then leaves every
    # thread's Python stack on stderr, beside the log, rather than a silent exit.
    faulthandler.enable()
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
    # Where the workers' metrics meet for one scrape. Made here: dockyard.metrics loads
    # prometheus_client (2.3 MiB), which only the workers use.
    metrics_dir = tempfile.mkdtemp(prefix="dockyard-metrics-")
    try:
        return supervise(config, secret, sock, count, debug_sock, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


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
    """Migrate the index and build it from storage when it is empty (or rebuildonstart).

    The work runs in a forked child: a rebuild reads every repository of storage, and
    the heap it grows (which the allocator keeps) would otherwise stay in this process
    and in every worker forked from it for the whole life of the server.
    """
    index = build_index(config)
    if index is None:
        log.info("index: none (listings walk storage)")
        return
    log.info("index: %s", index.where)
    driver = create_driver(config.storage.driver, config.storage.parameters)

    async def prepare() -> None:
        from dockyard.index.maintain import build_if_empty

        try:
            await build_if_empty(index, driver, force=config.storage.index.rebuild_on_start)
        finally:
            await index.aclose()
            await driver.aclose()

    _in_child(lambda: asyncio.run(prepare()), "index preparation")


def _in_child(work: Callable[[], None], what: str) -> None:
    """Run ``work`` in a forked child and wait for it; what it raised is raised here.

    Whatever memory ``work`` takes goes back to the system with the child. The
    exception comes back pickled over a pipe between the two processes (never
    from storage); one that does not survive the trip becomes a RuntimeError.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child would write the parent's buffered output again
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is checked by the parent
        os.close(read_end)
        die_with_parent(parent)  # a server stopped while it starts leaves no orphan
        code = 0
        try:
            work()
        except BaseException as exc:  # every outcome goes to the parent
            code = 1
            try:
                payload = pickle.dumps(exc)
            except Exception:
                payload = pickle.dumps(RuntimeError(f"{what} failed: {exc!r}"))
            with contextlib.suppress(OSError), os.fdopen(write_end, "wb") as out:
                out.write(payload)
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if payload:
        try:
            raised = pickle.loads(payload)
        except Exception:
            raised = None
        if not isinstance(raised, BaseException):
            raised = RuntimeError(f"{what} failed")
        raise raised
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{what} failed: exit status {os.waitstatus_to_exitcode(status)}")
