"""The notifier ``notifications`` configures, for one worker (server layer: reads config).

See :mod:`dockyard.notifications` for how events are made and delivered.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING

from dockyard.config import Config, ConfigError, split_host_port
from dockyard.logs import redact
from dockyard.notifications import Endpoint, Notifier, SourceRecord, open_spools

if TYPE_CHECKING:
    from dockyard.metrics import Metrics

__all__ = ["build_notifier", "check_spool", "debug_vars", "export_metrics", "spool_directory"]

log = logging.getLogger("dockyard.notifications")


def spool_directory(config: Config) -> str | None:
    """``notifications.spool.directory``, else ``<rootdirectory>/notifications-spool``
    with the filesystem driver, else None (events queue in memory)."""
    spool = config.notifications.spool
    if spool.directory:
        return os.path.abspath(spool.directory)
    storage = config.storage
    if storage.driver == "filesystem":
        root = str(storage.parameters.get("rootdirectory") or "/var/lib/registry")
        return os.path.join(os.path.abspath(root), "notifications-spool")
    return None


def check_spool(config: Config) -> None:
    """Make the spool directory now, so a bad one stops the start with its key named."""
    if not any(not e.disabled for e in config.notifications.endpoints):
        return
    directory = spool_directory(config)
    if directory is None:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        key = "notifications.spool.directory"
        raise ConfigError(f"{key}: cannot keep queued events in {directory}: "
                          f"{exc.strerror or exc}", key) from None


def _source(config: Config) -> SourceRecord:
    """distribution's ``source``: this host's name with the listening port, a fresh id."""
    addr = config.http.addr
    try:
        _, port = split_host_port(addr)
        addr = f"{socket.gethostname()}:{port}"
    except (ValueError, OSError):
        pass
    return SourceRecord(addr=addr, instance_id=str(uuid.uuid4()))


def build_notifier(config: Config, slot: int = 0, workers: int = 1) -> Notifier | None:
    """The notifier of worker ``slot`` of ``workers``; None without an enabled endpoint.

    Blocks briefly (opens the spools): call it before serving.
    """
    settings = config.notifications
    directory = spool_directory(config)
    endpoints = []
    for e in settings.endpoints:
        if e.disabled:
            log.info("notifications: endpoint %s is disabled", e.name)
            continue
        spools = open_spools(directory, e.name, slot, workers, settings.spool.max_events)
        endpoints.append(
            Endpoint(
                e.name,
                e.url,
                spools,
                headers=e.headers,
                timeout=e.timeout,
                threshold=e.threshold,
                backoff=e.backoff,
                ignored_media_types=(*e.ignored_media_types, *e.ignore.media_types),
                ignored_actions=e.ignore.actions,
            )
        )
    if not endpoints:
        return None
    if slot == 0:
        where = directory or "memory (lost on restart; set notifications.spool.directory)"
        log.info(
            "notifications: %d endpoint(s) (%s); queued events in %s",
            len(endpoints), ", ".join(e.name for e in endpoints), where,
        )
    return Notifier(
        endpoints, _source(config), include_references=settings.events.include_references
    )


def export_metrics(notifier: Notifier, metrics: Metrics) -> None:
    """Copy the endpoints' counters into distribution's Prometheus families whenever
    they are read (a scrape, a worker's snapshot: :meth:`Metrics.add_updater`).

    ``registry_notifications_events_total{type=Events|Successes|Failures|Errors,endpoint}``,
    ``registry_notifications_pending{endpoint}``,
    ``registry_notifications_status_total{code,endpoint}``: counted by the endpoints as
    they go (no per-event metric call on any path), moved over by their increase.
    """
    last: dict[str, dict[str, int]] = {}
    metrics.add_updater(lambda: _export(notifier, metrics, last))


def _export(notifier: Notifier, metrics: Metrics, last: dict[str, dict[str, int]]) -> None:
    for endpoint in notifier.endpoints:
        m, name = endpoint.metrics, endpoint.name
        seen = last.setdefault(name, {})
        for kind, value in (("Events", m.events), ("Successes", m.successes),
                            ("Failures", m.failures), ("Errors", m.errors)):
            if value != seen.get(kind, 0):
                metrics.notification_events.labels(kind, name).inc(value - seen.get(kind, 0))
                seen[kind] = value
        if m.pending != seen.get("pending", 0):
            metrics.notification_pending.labels(name).inc(m.pending - seen.get("pending", 0))
            seen["pending"] = m.pending
        for code, count in list(m.statuses.items()):
            key = f"status {code}"
            if count != seen.get(key, 0):
                metrics.notification_status.labels(code, name).inc(count - seen.get(key, 0))
                seen[key] = count


def debug_vars(notifier: Notifier) -> dict[str, object]:
    """``registry.notifications`` of ``/debug/vars``, as distribution publishes it."""
    return {"endpoints": [
        {"name": e.name, "url": redact(e.url), "Metrics": {
            "Pending": e.metrics.pending, "Events": e.metrics.events,
            "Successes": e.metrics.successes, "Failures": e.metrics.failures,
            "Errors": e.metrics.errors, "Statuses": dict(e.metrics.statuses),
            "Dropped": e.metrics.dropped}}
        for e in notifier.endpoints
    ]}
