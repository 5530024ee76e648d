"""``dockyard retention`` and ``dockyard garbage-collect --online``: the maintenance that
runs beside a serving registry (the server runs the same jobs on their intervals)."""

from __future__ import annotations

import argparse
import sys

from dockyard.cli_support import _closing, _open_storage, _progress, _where
from dockyard.config import Config, ConfigError

__all__ = ["garbage_collect_online", "retention"]


def retention(args: argparse.Namespace, config: Config) -> int:
    """``dockyard retention``: each decision on stderr, a summary on stdout."""
    import asyncio

    from dockyard.background import build_immutable_tags, build_retention_policies
    from dockyard.maintenance.purge import format_duration
    from dockyard.maintenance.retention import RetentionSummary, apply_retention
    from dockyard.registry.namespace import Namespace, RegistryOptions
    from dockyard.server import build_index

    try:
        policies = build_retention_policies(config)
        immutable = build_immutable_tags(config)
        index = build_index(config)
    except ConfigError as exc:
        print(f"dockyard: configuration error: {exc}", file=sys.stderr)
        return 2
    if not policies:
        print("dockyard: retention.policies is empty: nothing to apply", file=sys.stderr)
        return 2
    driver = _open_storage(config)
    if driver is None:
        return 2
    dry_run = args.dry_run or config.retention.dry_run
    dry = " (dry run: nothing is deleted)" if dry_run else ""
    _progress(f"retention of {_where(config, 'apply retention to')}, "
              f"{len(policies)} polic{'y' if len(policies) == 1 else 'ies'}, untagged "
              f"manifests kept for {format_duration(config.retention.delay)}{dry}")
    namespace = Namespace(driver, RegistryOptions(delete_enabled=True, immutable_tags=immutable),
                          index=index)

    async def run() -> RetentionSummary:
        if index is not None:
            await index.migrate()
        try:
            return await apply_retention(
                namespace, policies, delay=config.retention.delay, dry_run=dry_run,
                immutable=immutable, progress=_progress,
            )
        finally:
            if index is not None:
                await index.aclose()

    summary = asyncio.run(_closing(driver, run()))
    print(summary, flush=True)
    return 1 if summary.errors else 0


def garbage_collect_online(args: argparse.Namespace, config: Config) -> int:
    """``dockyard garbage-collect --online``: beside the serving registry, under the lease."""
    import asyncio

    from dockyard.background import build_fence
    from dockyard.index.fence import IndexLease
    from dockyard.maintenance.gc import GCSummary
    from dockyard.maintenance.gc_online import online_garbage_collect
    from dockyard.maintenance.jobs import held
    from dockyard.maintenance.purge import format_duration
    from dockyard.server import build_index, build_redis_cache

    settings = config.storage.maintenance.garbage_collect
    key = "storage.maintenance.garbagecollect.enabled"
    try:
        index = build_index(config)
        if index is not None and not settings.enabled:
            print(f"dockyard: --online needs {key}: true in the registry's configuration "
                  "(with it, manifest PUTs are fenced against the sweep); set it and restart "
                  "the registry first, or collect offline", file=sys.stderr)
            return 2
        fence = build_fence(config, index)
        redis = config.storage.cache.blob_descriptor == "redis"
        cache = build_redis_cache(config) if redis else None
    except ConfigError as exc:
        print(f"dockyard: configuration error: {exc}", file=sys.stderr)
        return 2
    assert index is not None and fence is not None
    driver = _open_storage(config)
    if driver is None:
        return 2
    grace = settings.grace_period if args.grace is None else args.grace
    dry_run = args.dry_run or settings.dry_run
    untagged = args.delete_untagged or settings.delete_untagged
    dry = " (dry run: nothing is deleted)" if dry_run else ""
    _progress(f"online garbage collection of {_where(config, 'collect')}, index {index.where}, "
              f"grace {format_duration(grace)}{dry}")

    async def run() -> GCSummary | None:
        await index.migrate()
        await fence.prepare()
        try:
            async with held(IndexLease(index.db), "gc") as mine:
                if not mine:
                    return None
                return await online_garbage_collect(
                    driver, index, fence, grace=grace, dry_run=dry_run,
                    delete_untagged=untagged, cache=cache, progress=_progress,
                )
        finally:
            await index.aclose()
            if cache is not None:
                await cache.client.aclose()

    summary = asyncio.run(_closing(driver, run()))
    if summary is None:
        print("dockyard: another collector holds the gc lease; try again later", file=sys.stderr)
        return 1
    print(summary, flush=True)
    return 1 if summary.errors else 0
