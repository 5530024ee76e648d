"""Upload purging: remove uploads abandoned for longer than an age.

The counterpart of distribution's ``storage.maintenance.uploadpurging``
(``enabled``, ``age``, ``interval``, ``dryrun``; defaults true, 168h, 24h, false).

What is scanned
    Repositories are found by descending from ``repositories/`` through every
    directory whose name does not start with ``_`` (repository name components
    never do), so ``_layers`` and ``_manifests`` -- the links of every blob and
    manifest -- are never walked, and blobs are never touched. Each
    ``_uploads/<uuid>/`` directory met on the way is one upload.

When an upload is old
    Its ``startedat`` file holds the RFC 3339 time it began (written by dockyard
    and by distribution alike). If that file is missing or unreadable, the upload
    counts as started at its last sign of activity: the newest modification time
    of the upload directory and of every file below it (``data`` grows with each
    chunk, each chunk adds a hash state), so an upload still being written is never
    mistaken for an abandoned one. (Distribution never purges such uploads; they
    would stay forever.) An upload is purged when that time is more than
    ``older_than`` seconds before ``now``.

Deleting
    The whole ``_uploads/<uuid>`` directory goes in one driver ``delete``. An
    upload that disappears meanwhile (finished, cancelled, or purged by another
    instance) is not an error. A dry run reports what it would delete and
    deletes nothing. Errors are counted and reported, never raised: one broken
    directory does not stop the purge.

In the server (:func:`run_upload_purger`)
    Only one process per instance purges (the first worker): its first run comes
    a random 5-60 seconds after start -- late enough not to slow startup, random so
    that instances started together do not all walk storage at the same moment
    (distribution waits a random 0-59 minutes, which a short-lived or frequently
    restarted registry may never reach) -- then every ``interval``. Each run logs
    one summary line; an exception is logged and the next run happens on schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import posixpath
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.storage import paths
from dockyard.storage.drivers.base import (
    AbortsStaleWrites,
    CheckedDriver,
    PathNotFound,
    StorageDriver,
    StorageError,
)

__all__ = [
    "FIRST_RUN_DELAY",
    "PurgeSummary",
    "format_duration",
    "format_size",
    "purge_uploads",
    "run_upload_purger",
]

log = logging.getLogger("dockyard.purge")

#: Bounds (seconds) of the random delay before the server's first purge.
FIRST_RUN_DELAY = (5.0, 60.0)
_HEARTBEAT = 1000  # a progress line every this many repositories


@dataclass(slots=True)
class PurgeSummary:
    """What one purge did (or, in a dry run, would have done)."""

    scanned: int = 0
    """Upload directories examined."""
    deleted: int = 0
    """Uploads deleted (in a dry run: that would have been deleted)."""
    bytes_freed: int = 0
    """Bytes in the deleted uploads' files (in a dry run: that would have been freed)."""
    errors: int = 0
    """Directories that could not be read or deleted."""
    repositories: int = 0
    """Repositories visited."""
    aborted_writes: int = 0
    """Backend writes left behind by gone uploads (S3 multipart uploads) that were aborted."""
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"upload purge{' (dry run)' if self.dry_run else ''}: "
            f"scanned {self.scanned} upload{'s' if self.scanned != 1 else ''} "
            f"in {self.repositories} repositor{'ies' if self.repositories != 1 else 'y'}, "
            f"{verb} {self.deleted} ({format_size(self.bytes_freed)}), "
            + (f"aborted {self.aborted_writes} stale backend writes, "
               if self.aborted_writes else "")
            + f"{self.errors} error{'s' if self.errors != 1 else ''}"
        )


def format_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _parse_started_at(raw: bytes) -> datetime | None:
    try:
        text = raw.decode("ascii").strip()
        if "T" not in text and "t" not in text:
            return None
        when = datetime.fromisoformat(text)
    except (UnicodeDecodeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def format_duration(duration: float) -> str:
    """``8d2h``, ``3h0m``, ``45s``: a duration in seconds, for humans."""
    seconds = int(duration)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds}s"


_UPLOAD_DIR = re.compile(r"(.*/_uploads/[^/]+)/")


async def _in_live_upload(driver: StorageDriver, path: str) -> bool:
    """Whether ``path`` belongs to an upload directory that still has its ``startedat``."""
    match = _UPLOAD_DIR.match(path)
    if match is None:
        return False
    try:
        await driver.stat(paths.upload_startedat_in(match.group(1)))
    except PathNotFound:
        return False
    return True


async def _upload_dirs(
    driver: StorageDriver, summary: PurgeSummary, report: Callable[[str], None]
) -> AsyncIterator[str]:
    """Every ``repositories/**/_uploads/<uuid>``, never entering ``_layers``/``_manifests``."""
    stack = [paths.REPOSITORIES_ROOT]
    while stack:
        directory = stack.pop()
        try:
            children = sorted(await driver.list(directory), reverse=True)
        except PathNotFound:
            continue  # a file, or gone meanwhile
        except StorageError as exc:
            summary.errors += 1
            report(f"error: cannot list {directory}: {exc}")
            continue
        names = {posixpath.basename(c): c for c in children}
        if "_uploads" in names or "_layers" in names or "_manifests" in names:
            summary.repositories += 1
            if summary.repositories % _HEARTBEAT == 0:
                report(
                    f"... {summary.repositories} repositories, {summary.scanned} uploads scanned"
                )
        for name, child in names.items():
            if name.startswith("_"):
                continue
            stack.append(child)
        uploads = names.get("_uploads")
        if uploads is None:
            continue
        try:
            entries = sorted(await driver.list(uploads))
        except PathNotFound:
            continue
        except StorageError as exc:
            summary.errors += 1
            report(f"error: cannot list {uploads}: {exc}")
            continue
        for entry in entries:
            yield entry


async def _tree(driver: StorageDriver, path: str) -> tuple[int, float]:
    """Total bytes of the files below ``path`` and the newest mtime of it or anything below."""
    size = 0
    newest = (await driver.stat(path)).mod_time
    async for info in driver.walk(path):
        newest = max(newest, info.mod_time)
        if not info.is_dir:
            size += info.size
    return size, newest


async def purge_uploads(
    driver: StorageDriver,
    *,
    older_than: float,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PurgeSummary:
    """Delete every upload that started more than ``older_than`` seconds before ``now``."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now - timedelta(seconds=older_than)
    summary = PurgeSummary(dry_run=dry_run)

    def report(message: str) -> None:
        if progress is not None:
            progress(message)

    async for upload in _upload_dirs(driver, summary, report):
        try:
            info = await driver.stat(upload)
            if not info.is_dir:
                continue  # not an upload: leave stray files alone
            summary.scanned += 1
            started: datetime | None = None
            with contextlib.suppress(PathNotFound):
                raw = await driver.get_content(paths.upload_startedat_in(upload))
                started = _parse_started_at(raw)
            if started is not None and started >= cutoff:
                continue  # the common case: no need to look further
            size, newest = await _tree(driver, upload)
            if started is None:
                started = datetime.fromtimestamp(newest, UTC)
                basis = "last modified"
                if started >= cutoff:
                    continue
            else:
                basis = "started"
            what = (
                f"{upload} ({basis} {started.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
                f"{format_duration((now - started).total_seconds())} ago, {format_size(size)})"
            )
            if not dry_run:
                try:
                    await driver.delete(upload)
                except PathNotFound:
                    continue  # finished, cancelled or purged elsewhere meanwhile
            summary.deleted += 1
            summary.bytes_freed += size
            report(f"{'would delete' if dry_run else 'deleted'} {what}")
        except PathNotFound:
            continue  # vanished while we looked at it
        except (StorageError, OSError) as exc:
            summary.errors += 1
            report(f"error: {upload}: {exc}")
    # Multipart uploads whose upload directory is already gone (a crash between
    # the two) are invisible to the walk above; the backend lists them itself. Those
    # of uploads still under way are kept whatever their date says: the walk judged
    # them by their startedat (S3-compatible servers may date uploads wrongly, moto
    # as 2010, and clocks drift), and deleting a stale upload aborts its writes too.
    inner = driver.inner if isinstance(driver, CheckedDriver) else driver
    if isinstance(inner, AbortsStaleWrites) and not dry_run:
        try:
            summary.aborted_writes = await inner.abort_stale_multipart_uploads(
                cutoff, functools.partial(_in_live_upload, driver)
            )
        except StorageError as exc:
            summary.errors += 1
            report(f"error: aborting stale multipart uploads: {exc}")
    return summary


async def run_upload_purger(
    driver: StorageDriver,
    *,
    age: float,
    interval: float,
    dry_run: bool = False,
    first_delay: float | None = None,
) -> None:
    """The server's purge loop: after ``first_delay`` (random by default), then every
    ``interval`` seconds (once only if ``interval`` is 0). Runs until cancelled; never raises.
    """
    delay = random.uniform(*FIRST_RUN_DELAY) if first_delay is None else first_delay
    log.info(
        "upload purging: first run in %.0fs, then every %s; deleting uploads older than %s%s",
        delay, format_duration(interval) if interval > 0 else "never",
        format_duration(age), " (dry run)" if dry_run else "",
    )
    await asyncio.sleep(delay)
    while True:
        try:
            summary = await purge_uploads(
                driver, older_than=age, dry_run=dry_run, progress=log.info
            )
            (log.warning if summary.errors else log.info)("%s", summary)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("upload purging failed; next run in %.0fs", interval)
        if interval <= 0:
            return
        await asyncio.sleep(interval)
