"""What the mark and the sweep share: the run's state, its reports, reading the layout."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from dockyard.cache.base import BlobDescriptorCache, CacheFailure
from dockyard.digest import Digest, InvalidDigest
from dockyard.index.base import Index
from dockyard.maintenance.gc_report import GCSummary
from dockyard.manifest import MAX_MANIFEST_SIZE
from dockyard.metadata import MetadataIndex
from dockyard.storage import paths
from dockyard.storage.drivers.base import FileInfo, PathNotFound, StorageDriver

__all__ = ["Collection", "blobs_in_prefix", "bounded"]

T = TypeVar("T")
U = TypeVar("U")

_CATALOG_PAGE = 1000
_CONCURRENCY = 16  # storage requests in flight (manifest reads, deletes)
# A revision blob larger than this is not read (a manifest is at most 4 MiB; some
# registries took larger ones): a link that resolves to a layer must not fill memory.
_READ_LIMIT = 8 * MAX_MANIFEST_SIZE


async def blobs_in_prefix(
    driver: StorageDriver, algorithm: str, prefix: str
) -> AsyncIterator[tuple[Digest, FileInfo]]:
    """Each blob's ``data`` file under ``blobs/<alg>/<hh>`` (``prefix``) with its digest;
    what is not a blob of this layout is passed over (and so left alone)."""
    hh = posixpath.basename(prefix)
    async for info in driver.walk(prefix):
        parts = info.path[len(prefix) + 1 :].split("/")
        if info.is_dir or len(parts) != 2 or parts[1] != "data":
            continue
        try:
            digest = Digest.parse(f"{algorithm}:{parts[0]}")
        except InvalidDigest:
            continue
        if digest.hex[:2] == hh:
            yield digest, info


async def bounded(work: Callable[[U], Awaitable[T]], items: Sequence[U]) -> list[T]:
    """``work`` on every item, at most ``_CONCURRENCY`` at a time; results in order.

    A few workers share one iterator, so a repository of a million revisions costs a
    million results, not a million tasks. After an exception the workers stop taking
    items; once they are all done, the first exception is raised.
    """
    results: dict[int, T] = {}
    pending = iter(enumerate(items))
    failed = False

    async def worker() -> None:
        nonlocal failed
        for index, item in pending:
            if failed:
                return
            try:
                results[index] = await work(item)
            except BaseException:
                failed = True
                raise

    outcomes = await asyncio.gather(
        *(worker() for _ in range(min(_CONCURRENCY, len(items)))), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [results[i] for i in range(len(items))]


class Collection:
    """One run: its options, the mark set, the summary; extended by the mark and the sweep."""

    def __init__(
        self,
        driver: StorageDriver,
        metadata: MetadataIndex,
        cache: BlobDescriptorCache | None,
        *,
        dry_run: bool,
        delete_untagged: bool,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.driver = driver
        self.metadata = metadata
        self.cache = cache
        self.dry_run = dry_run
        self.delete_untagged = delete_untagged
        self._progress = progress
        self.summary = GCSummary(dry_run=dry_run, delete_untagged=delete_untagged)
        self.marked: set[Digest] = set()
        self.undeleted: set[Digest] = set()
        """Unmarked blobs whose deletion failed: still there, so links to them stay."""
        self.mark_failed = False
        self.would = "would delete" if dry_run else "deleted"
        self.hooks: Index | None = None
        """The metadata index an offline run keeps (told of each storage delete)."""

    # -- reporting ------------------------------------------------------------------

    def report(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def error(self, message: str) -> None:
        self.summary.errors += 1
        self.report(f"error: {message}")

    async def clear_cache(self, repository: str | None, digest: Digest) -> None:
        if self.cache is None or self.dry_run:
            return
        try:
            await self.cache.clear(repository, digest)
        except CacheFailure as exc:
            self.cache = None
            self.error(
                f"blob descriptor cache: {exc}; it may still describe deleted blobs: "
                "flush it before the registry serves again"
            )

    async def keep_index(self, what: str, update: Awaitable[None]) -> None:
        """Await one index hook after a storage delete; a failure is an error, not fatal
        (storage is the truth: ``dockyard index rebuild`` repairs the index)."""
        try:
            await update
        except Exception as exc:  # any backend fault of the index (SQLite, PostgreSQL)
            self.error(f"index: {what}: {exc}; run `dockyard index rebuild`")

    # -- reading the layout ---------------------------------------------------------

    async def list_digests(self, root: str) -> list[Digest]:
        """The digests of ``<root>/<alg>/<hex>`` directories, sorted; [] if ``root`` is absent."""
        try:
            algorithms = sorted(await self.driver.list(root))
        except PathNotFound:
            return []
        found: list[Digest] = []
        for alg_dir in algorithms:
            algorithm = posixpath.basename(alg_dir)
            try:
                entries = sorted(await self.driver.list(alg_dir))
            except PathNotFound:
                continue
            for entry in entries:
                with contextlib.suppress(InvalidDigest):  # not a digest: not ours to judge
                    found.append(Digest.parse(f"{algorithm}:{posixpath.basename(entry)}"))
        return found

    async def read_link(self, path: str) -> Digest | None:
        """The digest a link file holds; None if it is missing or does not hold one."""
        try:
            raw = await self.driver.get_content(path)
        except PathNotFound:
            return None
        try:
            return Digest.parse(raw.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidDigest):
            return None

    async def read_payload(self, digest: Digest) -> bytes | None:
        """A blob of at most ``_READ_LIMIT`` bytes; None if it is larger."""
        data = bytearray()
        reader = self.driver.reader(paths.blob_data_path(digest))
        try:
            async for chunk in reader:
                data += chunk
                if len(data) > _READ_LIMIT:
                    return None
        finally:
            if isinstance(reader, AsyncGenerator):
                await reader.aclose()
        return bytes(data)

    async def repositories(self) -> AsyncIterator[str]:
        last = ""
        while True:
            page = await self.metadata.repositories(_CATALOG_PAGE, last)
            for name in page.entries:
                yield name
            if not page.more or not page.entries:
                return
            last = page.entries[-1]
