"""Rebuild the index from storage, verify it against storage, build it when empty.

Storage is the truth: rebuild replaces each repository's rows with what the
layout holds (keeping the push and pull times only the index knows) and drops
repositories storage no longer has; verify compares without writing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dockyard.index.base import Index, RepositoryState
from dockyard.index.walk import RepositoryListing, StorageWalker
from dockyard.storage.drivers.base import StorageDriver

__all__ = ["RebuildSummary", "VerifySummary", "build_if_empty", "drift", "rebuild", "verify"]

log = logging.getLogger("dockyard.index")

Progress = Callable[[str], None]

_REPOSITORIES = 8
"""Repositories read from storage at once (their requests share the walker's bound)."""


def _quiet(_message: str) -> None:
    pass


@dataclass(slots=True)
class RebuildSummary:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    removed: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"indexed {self.repositories} repositories, {self.tags} tags, "
                f"{self.manifests} manifests; removed {self.removed} stale repositories "
                f"({self.seconds:.1f}s)")


@dataclass(slots=True)
class VerifySummary:
    repositories: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return f"index matches storage: {self.repositories} repositories, no drift"
        return (f"index drift in {self.repositories} repositories checked: "
                f"{len(self.problems)} problem(s)")


def _keep_times(fresh: RepositoryState, old: RepositoryState | None) -> RepositoryState:
    if old is None:
        return fresh
    for digest, record in list(fresh.manifests.items()):
        before = old.manifests.get(digest)
        if before is not None:
            fresh.manifests[digest] = dataclasses.replace(
                record, pushed_at=before.pushed_at, last_pull=before.last_pull
            )
    return fresh


async def rebuild(
    index: Index, driver: StorageDriver, progress: Progress = _quiet
) -> RebuildSummary:
    """Make the index hold exactly what storage holds."""
    started = time.monotonic()
    summary = RebuildSummary()
    walker = StorageWalker(driver)
    seen: set[str] = set()

    async def one(listing: RepositoryListing) -> None:
        name = listing.name
        state = await walker.state(listing)
        await index.replace_repository(_keep_times(state, await index.repository_state(name)))
        seen.add(name)
        summary.repositories += 1
        summary.tags += len(state.tags)
        summary.manifests += len(state.manifests)
        if summary.repositories % 100 == 0:
            progress(f"indexed {summary.repositories} repositories ({name})")

    await _each(walker, one)
    for name in await index.all_repositories():
        if name not in seen:
            await index.repository_deleted(name)
            summary.removed += 1
            progress(f"{name}: not in storage any more, removed from the index")
    summary.seconds = time.monotonic() - started
    return summary


async def _each(
    walker: StorageWalker, work: Callable[[RepositoryListing], Coroutine[Any, Any, None]]
) -> None:
    """``work`` on every repository of storage as one walk finds them, ``_REPOSITORIES``
    at a time: on an object store most of a repository's time is waiting on reads."""
    pending: set[asyncio.Task[None]] = set()
    try:
        async for listing in walker.listings():
            if len(pending) >= _REPOSITORIES:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a failure stops the run, as it did one at a time
            pending.add(asyncio.create_task(work(listing)))
        for task in list(pending):
            await task
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def drift(stored: RepositoryState, indexed: RepositoryState | None) -> list[str]:
    """How the index's view of a repository differs from storage's (empty: none)."""
    name = stored.name
    if indexed is None:
        return [f"{name}: in storage, not in the index"]
    problems = []
    if stored.has_tags != indexed.has_tags:
        problems.append(f"{name}: tag directory {'present' if stored.has_tags else 'absent'} "
                        "in storage, not so in the index")
    for tag in sorted(stored.tags.keys() | indexed.tags.keys()):
        if stored.tags.get(tag) != indexed.tags.get(tag):
            problems.append(f"{name}:{tag}: storage {stored.tags.get(tag)}, "
                            f"index {indexed.tags.get(tag)}")
    for digest in sorted(stored.manifests.keys() | indexed.manifests.keys(), key=str):
        s, i = stored.manifests.get(digest), indexed.manifests.get(digest)
        if s != i:
            what = "missing from the index" if i is None else (
                "not in storage" if s is None else "differs")
            problems.append(f"{name}@{digest}: manifest {what}")
    for digest in sorted(stored.layers ^ indexed.layers, key=str):
        where = "storage" if digest in stored.layers else "the index"
        problems.append(f"{name}: layer link {digest} only in {where}")
    for digest, size in sorted(stored.sizes.items(), key=lambda i: str(i[0])):
        if indexed.sizes.get(digest) != size:
            problems.append(f"{name}: blob {digest} is {size} bytes, "
                            f"index says {indexed.sizes.get(digest)}")
    return problems


async def verify(index: Index, driver: StorageDriver, progress: Progress = _quiet) -> VerifySummary:
    """Compare every repository of storage and of the index; writes nothing."""
    summary = VerifySummary()
    walker = StorageWalker(driver)
    seen: set[str] = set()
    found: dict[str, list[str]] = {}

    async def one(listing: RepositoryListing) -> None:
        name = listing.name
        seen.add(name)
        summary.repositories += 1
        found[name] = drift(await walker.state(listing), await index.repository_state(name))

    await _each(walker, one)
    for name in sorted(found):  # reported in a stable order whatever finished first
        for problem in found[name]:
            progress(problem)
        summary.problems.extend(found[name])
    for name in await index.all_repositories():
        if name not in seen:
            problem = f"{name}: in the index, not in storage"
            progress(problem)
            summary.problems.append(problem)
    return summary


async def build_if_empty(index: Index, driver: StorageDriver, *, force: bool = False) -> None:
    """At start: migrate; build the index from storage when it is empty (or ``force``)."""
    version = await index.migrate()
    log.info("index: schema version %d", version)
    if not force and not await index.is_empty():
        return
    walker = StorageWalker(driver)
    async for _ in walker.repositories():
        break
    else:
        return  # nothing stored yet: nothing to build
    log.info("index: building from storage%s", " (storage.index.rebuildonstart)" if force else "")
    summary = await rebuild(index, driver, lambda message: log.info("index: %s", message))
    log.info("index: %s", summary)
