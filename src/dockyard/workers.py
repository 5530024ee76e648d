"""The process model: one worker process, or a supervisor forking N of them over one
listening socket (restarting a worker that dies, stopping them all on SIGTERM/SIGINT).

A worker builds its own context (drivers, caches, index connections: nothing is shared
across the fork but the socket and the upload secret), serves the app, and worker 0
also runs the instance's periodic jobs (upload purging, retention, online GC) and the
debug server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from aiohttp import web

from dockyard.api.app import create_app
from dockyard.api.context import AppContext
from dockyard.assembly import Worker, build_context, build_redis_cache
from dockyard.background import build_lease, start_maintenance_jobs
from dockyard.balance import BalancedSite, LoadBoard
from dockyard.config import Config
from dockyard.connections import GuardedAppRunner
from dockyard.debugserver import Instruments, build_health, build_metrics, instrument_app
from dockyard.heap import keep_freed_heap
from dockyard.index import SqlIndex
from dockyard.logs import AccessLogger
from dockyard.maintenance.jobs import Lease
from dockyard.notifying import build_notifier, debug_vars, export_metrics
from dockyard.tls import server_ssl_context
from dockyard.tracing import start_tracing

__all__ = ["die_with_parent", "run_worker", "supervise"]

log = logging.getLogger("dockyard")

_PR_SET_PDEATHSIG = 1


def supervise(
    config: Config, secret: bytes, sock: socket.socket, count: int,
    debug_sock: socket.socket | None = None, metrics_dir: str | None = None,
) -> int:
    """Fork ``count`` workers and keep them running until SIGTERM/SIGINT; the exit code.

    Worker 0 runs the periodic jobs and the debug listener (``debug_sock``); with
    ``metrics_dir`` the workers' metrics meet there for one scrape.
    """
    children: dict[int, int] = {}
    stopping = False
    board = LoadBoard(count)  # before the fork: every worker maps the same memory

    parent = os.getpid()

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                die_with_parent(parent)
                own_debug = debug_sock if index == 0 else None  # the debug server: worker 0
                if debug_sock is not None and own_debug is None:
                    debug_sock.close()
                code = run_worker(config, secret, sock, Worker(index, count),
                                  debug_sock=own_debug, metrics_dir=metrics_dir, board=board)
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
    # What the imports built is shared with the workers: frozen, a worker's collections
    # never walk it, which would write to each object and copy its page into the worker.
    gc.freeze()
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


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this forked process when ``parent`` dies (even by SIGKILL).

    Otherwise orphaned workers keep the port and a restart fails to bind.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (AttributeError, OSError):  # not Linux: the supervisor's SIGTERM still works
        return
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(0)


def run_worker(
    config: Config, secret: bytes, sock: socket.socket, worker: Worker,
    debug_sock: socket.socket | None = None, metrics_dir: str | None = None,
    board: LoadBoard | None = None,
) -> int:
    """Serve in this process (``worker``) until SIGTERM/SIGINT; the primary worker also
    runs the instance's periodic jobs. With ``board`` (several workers on ``sock``) new
    connections go to the least loaded worker (:mod:`dockyard.balance`)."""
    keep_freed_heap()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_worker(config, secret, sock, worker, debug_sock, metrics_dir, board))
    return 0


async def _worker(
    config: Config, secret: bytes, sock: socket.socket, worker: Worker,
    debug_sock: socket.socket | None = None, metrics_dir: str | None = None,
    board: LoadBoard | None = None,
) -> None:
    instruments = Instruments(metrics=build_metrics(config, metrics_dir),
                              tracing=start_tracing())
    ctx = build_context(config, secret, instruments, worker)
    # Worker ``worker.index`` of ``worker.count`` owns its own event spools
    # (dockyard.notifying).
    notifier = await asyncio.to_thread(build_notifier, config, worker.index, worker.count)
    if notifier is not None:
        ctx = dataclasses.replace(ctx, notifier=notifier)
        notifier.start()
        instruments.add_vars("notifications", lambda: debug_vars(notifier))
        if instruments.metrics is not None:
            export_metrics(notifier, instruments.metrics)
    if ctx.namespace.index is not None:
        await ctx.namespace.index.migrate()  # applied already; creates an in-memory one
    if ctx.namespace.fence is not None:
        await ctx.namespace.fence.prepare()
    errors = None
    if instruments.metrics is not None:
        from dockyard.metrics.http import metrics_middleware

        errors = functools.partial(metrics_middleware, instruments.metrics)
    app = create_app(ctx, errors)
    if config.proxy.enabled:
        from dockyard.proxy import ProxyNamespace

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
        on_count=None if board is None else functools.partial(board.publish, worker.index),
    )
    await runner.setup()
    # What start-up built (modules, the application, its routes) lives as long as the
    # process: frozen, it is no longer walked by every full collection (tens of ms
    # each), which the objects requests leave behind for a while (events) set off.
    gc.collect()
    gc.freeze()
    ssl_context = server_ssl_context(config.http.tls)
    site: web.BaseSite = (
        web.SockSite(runner, sock, ssl_context=ssl_context) if board is None
        else BalancedSite(runner, sock, board, worker.index, ssl_context=ssl_context)
    )
    await site.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    # Scheduled jobs run in one worker only: N purgers would walk storage N times.
    purger = _start_upload_purger(config, ctx) if worker.primary else None
    jobs = (start_maintenance_jobs(config, ctx, _lease(config, ctx), instruments.metrics)
            if worker.primary else [])
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
