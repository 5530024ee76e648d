"""The server's periodic maintenance, from the configuration: retention
(``retention.interval``) and online garbage collection
(``storage.maintenance.garbagecollect``), each under a lease so that one instance of
many runs it at a time (:mod:`dockyard.maintenance.jobs`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from dockyard.api.context import AppContext
from dockyard.config import Config, ConfigError
from dockyard.index.fence import BlobFence, IndexLease
from dockyard.index.sql import SqlIndex
from dockyard.maintenance.jobs import Lease, LocalLease, RedisLease, run_periodically
from dockyard.policy import ImmutableTagRule, ImmutableTags, KeepTags, RetentionPolicy
from dockyard.registry.namespace import Namespace

__all__ = [
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


def start_maintenance_jobs(
    config: Config, ctx: AppContext, lease: Lease
) -> list[asyncio.Task[None]]:
    """The periodic jobs this instance runs (on one of its workers)."""
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

        async def apply() -> None:
            summary = await apply_retention(
                namespace, policies, delay=retention.delay, dry_run=retention.dry_run,
                immutable=served.options.immutable_tags, progress=log.info,
            )
            (log.warning if summary.errors else log.info)("%s", summary)

        tasks.append(loop.create_task(
            run_periodically("retention", retention.interval, apply, lease), name="retention"))
    gc = config.storage.maintenance.garbage_collect
    if gc.enabled and gc.interval > 0 and index is not None and served.fence is not None:
        from dockyard.maintenance.gc_online import online_garbage_collect

        fence = served.fence

        async def collect() -> None:
            summary = await online_garbage_collect(
                served.driver, index, fence, grace=gc.grace_period, dry_run=gc.dry_run,
                delete_untagged=gc.delete_untagged, cache=served.cache, progress=log.info,
            )
            (log.warning if summary.errors else log.info)("%s", summary)

        tasks.append(loop.create_task(
            run_periodically("gc", gc.interval, collect, lease), name="gc"))
    return tasks
