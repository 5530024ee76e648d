"""The server's periodic maintenance, from the configuration: retention
(``retention.interval``) and online garbage collection
(``storage.maintenance.garbagecollect``), each under a lease so that one instance of
many runs it at a time (:mod:`dockyard.maintenance.jobs`).

With metrics on, every run of this instance is counted (:class:`JobMetrics`,
``registry_gc_*`` and ``registry_retention_*``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dockyard.api.context import AppContext
from dockyard.config import Config, ConfigError
from dockyard.index.fence import BlobFence, IndexLease
from dockyard.index.sql import SqlIndex
from dockyard.maintenance.jobs import Lease, LocalLease, RedisLease, run_periodically
from dockyard.policy import ImmutableTagRule, ImmutableTags, KeepTags, RetentionPolicy
from dockyard.registry.namespace import Namespace

if TYPE_CHECKING:  # the metrics package is imported only when metrics are on
    from dockyard.maintenance.gc_report import GCSummary
    from dockyard.maintenance.retention import RetentionSummary
    from dockyard.metrics import Metrics

__all__ = [
    "JobMetrics",
    "build_fence",
    "build_immutable_tags",
    "build_lease",
    "build_retention_policies",
    "start_maintenance_jobs",
]

log = logging.getLogger("dockyard.maintenance")


def build_immutable_tags(config: Config) -> ImmutableTags:
    """The ``immutabletags`` rules; ConfigError naming the rule for a bad glob."""
    rules = []
    for i, rule in enumerate(config.immutabletags):
        try:
            rules.append(ImmutableTagRule(i, rule.repositories, rule.tags))
        except ValueError as exc:
            key = f"immutabletags[{i}]"
            raise ConfigError(f"{key}: {exc}", key) from None
    return ImmutableTags(tuple(rules))


def build_retention_policies(config: Config) -> tuple[RetentionPolicy, ...]:
    """The ``retention.policies``; ConfigError naming the policy for a bad glob."""
    policies = []
    for i, p in enumerate(config.retention.policies):
        try:
            keep = tuple(
                KeepTags(k.patterns, k.pushed_within, k.pulled_within,
                         k.most_recently_pushed_count, k.most_recently_pulled_count)
                for k in p.keep_tags
            )
            policies.append(RetentionPolicy(i, p.repositories, keep, p.delete_untagged,
                                            p.delete_referrers))
        except ValueError as exc:
            key = f"retention.policies[{i}]"
            raise ConfigError(f"{key}: {exc}", key) from None
    return tuple(policies)


def build_fence(config: Config, index: SqlIndex | None) -> BlobFence | None:
    """The PUT/sweep fence when ``storage.maintenance.garbagecollect.enabled`` (it needs
    the metadata index: ConfigError naming the key otherwise)."""
    if not config.storage.maintenance.garbage_collect.enabled:
        return None
    if index is None:
        key = "storage.maintenance.garbagecollect.enabled"
        raise ConfigError(
            f"{key}: online garbage collection needs the metadata index (storage.index: "
            "sqlite for one host, postgres for several); without it run "
            "`dockyard garbage-collect` offline", key)
    return BlobFence(index.db)


def build_lease(index: SqlIndex | None, redis: Any | None = None) -> Lease:
    """Where the jobs' leases live: the index database, else Redis (a client of
    ``redis.addr``), else this process."""
    if index is not None:
        return IndexLease(index.db)
    if redis is not None:
        return RedisLease(redis)
    return LocalLease()


class JobMetrics:
    """The counts of one periodic job, ``registry_<job>_*``: runs, what was deleted,
    errors, and the last run's duration and end time.

    ``deleted`` names the summary's counts that become ``registry_<job>_<name>_total``
    counters (``bytes_freed`` too). A dry run counts as a run but deletes nothing,
    so it adds nothing to those. A run that raised counts one error.
    """

    def __init__(self, metrics: Metrics, job: str, what: str,
                 deleted: dict[str, str]) -> None:
        prefix = f"registry_{job}"
        self.runs = metrics.counter(f"{prefix}_runs", f"{what} runs completed or failed.")
        self.errors = metrics.counter(f"{prefix}_errors",
                                      f"Errors during {what} runs (a failed run counts one).")
        self.deleted = {
            attr: metrics.counter(f"{prefix}_{attr}", doc) for attr, doc in deleted.items()}
        self.duration = metrics.gauge(f"{prefix}_last_run_duration_seconds",
                                      f"How long the last {what} run took, in seconds.")
        self.finished = metrics.gauge(f"{prefix}_last_run_timestamp_seconds",
                                      f"When the last {what} run ended (Unix time).")
        for family in (self.runs, self.errors, *self.deleted.values()):
            family.labels().inc(0)  # present, at 0, before the first run

    async def timed(self, run: Callable[[], Awaitable[GCSummary | RetentionSummary]]) -> None:
        """Run ``run`` and record its summary (re-raises what it raises)."""
        start = time.monotonic()
        try:
            summary = await run()
        except Exception:
            self.errors.labels().inc()
            raise
        else:
            self.errors.labels().inc(summary.errors)
            if not summary.dry_run:
                for attr, family in self.deleted.items():
                    family.labels().inc(getattr(summary, attr))
        finally:
            self.runs.labels().inc()
            self.duration.labels().set(time.monotonic() - start)
            self.finished.labels().set(time.time())


def gc_metrics(metrics: Metrics) -> JobMetrics:
    """``registry_gc_*``: the online collector's runs on this instance."""
    return JobMetrics(metrics, "gc", "online garbage collection", {
        "manifests_deleted": "Untagged manifests deleted by online garbage collection.",
        "blobs_deleted": "Blobs deleted by online garbage collection.",
        "bytes_freed": "Bytes of blobs deleted by online garbage collection.",
    })


def retention_metrics(metrics: Metrics) -> JobMetrics:
    """``registry_retention_*``: the retention job's runs on this instance."""
    return JobMetrics(metrics, "retention", "retention", {
        "tags_deleted": "Tags deleted by retention policies.",
        "manifests_deleted": "Manifests deleted by retention policies.",
        "skipped": "Retention deletions given up because the repository changed.",
    })


def start_maintenance_jobs(
    config: Config, ctx: AppContext, lease: Lease, metrics: Metrics | None = None
) -> list[asyncio.Task[None]]:
    """The periodic jobs this instance runs (on one of its workers); with ``metrics``,
    their runs are counted (:class:`JobMetrics`)."""
    served = ctx.namespace
    if config.storage.maintenance.read_only.enabled or config.proxy.enabled:
        log.info("maintenance jobs: off on a read-only registry or a pull-through cache")
        return []
    index = served.index if isinstance(served.index, SqlIndex) else None
    loop = asyncio.get_running_loop()
    tasks = []
    retention = config.retention
    if retention.interval > 0 and retention.policies:
        from dockyard.maintenance.retention import apply_retention

        # Retention deletes whatever storage.delete.enabled says for clients.
        namespace = Namespace(served.driver, replace(served.options, delete_enabled=True),
                              metadata=served.metadata, cache=served.cache, index=served.index,
                              fence=served.fence)
        policies = build_retention_policies(config)

        async def apply() -> RetentionSummary:
            summary = await apply_retention(
                namespace, policies, delay=retention.delay, dry_run=retention.dry_run,
                immutable=served.options.immutable_tags, progress=log.info,
            )
            (log.warning if summary.errors else log.info)("%s", summary)
            return summary

        counted = _counted(apply, retention_metrics(metrics) if metrics else None)
        tasks.append(loop.create_task(
            run_periodically("retention", retention.interval, counted, lease), name="retention"))
    gc = config.storage.maintenance.garbage_collect
    if gc.enabled and gc.interval > 0 and index is not None and served.fence is not None:
        from dockyard.maintenance.gc_online import online_garbage_collect

        fence = served.fence

        async def collect() -> GCSummary:
            summary = await online_garbage_collect(
                served.driver, index, fence, grace=gc.grace_period, dry_run=gc.dry_run,
                delete_untagged=gc.delete_untagged, cache=served.cache, progress=log.info,
            )
            (log.warning if summary.errors else log.info)("%s", summary)
            return summary

        counted = _counted(collect, gc_metrics(metrics) if metrics else None)
        tasks.append(loop.create_task(
            run_periodically("gc", gc.interval, counted, lease), name="gc"))
    return tasks


def _counted(
    run: Callable[[], Awaitable[Any]], recorder: JobMetrics | None
) -> Callable[[], Awaitable[None]]:
    """The job ``run_periodically`` calls: ``run``, recorded when metrics are on."""
    async def job() -> None:
        if recorder is None:
            await run()
        else:
            await recorder.timed(run)
    return job
