"""The sweep: unmarked blobs, then the layer links that named them."""

from __future__ import annotations

import posixpath

from dockyard.digest import Digest
from dockyard.maintenance.gc_base import Collection, blobs_in_prefix, bounded
from dockyard.maintenance.purge import format_size
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageError

__all__ = ["Sweeper"]

_HEARTBEAT = 10_000  # a progress line every this many blobs examined


class Sweeper(Collection):
    """Deletes what the mark did not keep."""

    async def sweep_blobs(self) -> None:
        root = paths.blobs_root()
        try:
            algorithms = sorted(await self.driver.list(root))
        except PathNotFound:
            return
        except StorageError as exc:
            self.error(f"listing {root}: {exc}")
            return
        for alg_dir in algorithms:
            try:
                prefixes = sorted(await self.driver.list(alg_dir))
            except PathNotFound:
                continue
            except StorageError as exc:
                self.error(f"listing {alg_dir}: {exc}")
                continue
            for prefix in prefixes:
                await self.sweep_prefix(posixpath.basename(alg_dir), prefix)

    async def sweep_prefix(self, algorithm: str, prefix: str) -> None:
        """One ``blobs/<alg>/<hh>``: walked whole first, then its unmarked blobs deleted."""
        doomed: list[tuple[Digest, int]] = []
        try:
            async for digest, info in blobs_in_prefix(self.driver, algorithm, prefix):
                self.summary.blobs_examined += 1
                if self.summary.blobs_examined % _HEARTBEAT == 0:
                    self.report(f"... {self.summary.blobs_examined} blobs examined, "
                                f"{self.summary.blobs_deleted + len(doomed)} unmarked")
                if digest not in self.marked:
                    doomed.append((digest, info.size))
        except PathNotFound:
            return
        except StorageError as exc:
            self.error(f"walking {prefix}: {exc}")
            return  # what was not examined is not deleted

        gone: list[Digest] = []

        async def delete(digest: Digest, size: int) -> None:
            if not self.dry_run:
                try:
                    await self.driver.delete(paths.blob_dir_path(digest))
                except PathNotFound:
                    return
                except StorageError as exc:
                    self.undeleted.add(digest)
                    self.error(f"deleting blob {digest}: {exc}")
                    return
            gone.append(digest)
            self.summary.blobs_deleted += 1
            self.summary.bytes_freed += size
            self.report(f"{self.would} blob {digest} ({format_size(size)})")
            await self.clear_cache(None, digest)

        await bounded(lambda item: delete(*item), doomed)
        if gone and self.hooks is not None and not self.dry_run:
            await self.keep_index(f"{len(gone)} blobs of {prefix}",
                                  self.hooks.blobs_deleted(gone))

    def gone(self, digest: Digest) -> bool:
        """Whether the sweep deleted (or, in a dry run, would delete) ``digest``."""
        return digest not in self.marked and digest not in self.undeleted

    async def sweep_layer_links(self) -> None:
        try:
            async for name in self.repositories():
                try:
                    await self.sweep_repository_links(name)
                except StorageError as exc:
                    self.error(f"{name}: layer links: {exc}")
        except StorageError as exc:
            self.error(f"listing repositories: {exc}")

    async def sweep_repository_links(self, name: str) -> None:
        async def check(digest: Digest) -> None:
            if digest in self.marked:
                return  # named after a kept blob: not worth reading
            link = paths.layer_link_path(name, digest)
            target = await self.read_link(link)
            if target is None or not self.gone(target):
                return  # missing, unreadable (not ours to judge) or still there
            if not self.dry_run:
                try:
                    await self.driver.delete(paths.link_dir(link))
                except PathNotFound:
                    return
                if self.hooks is not None:
                    await self.keep_index(f"{name}: layer link {digest}",
                                          self.hooks.layer_unlinked(name, digest))
            self.summary.layer_links_deleted += 1
            self.report(f"{name}: {self.would} layer link {digest}")
            await self.clear_cache(name, digest)

        digests = await self.list_digests(paths.layers_root(name))
        await bounded(check, digests)
