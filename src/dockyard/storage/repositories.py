"""Removing a whole repository from the layout (distribution cannot: distribution#2747)."""

from __future__ import annotations

import contextlib
import posixpath

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import NameUnknown
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageDriver

__all__ = ["delete_repository_files"]

_OWN = ("_manifests", "_layers", "_uploads")


async def _linked(driver: StorageDriver, root: str) -> list[Digest]:
    found: list[Digest] = []
    try:
        algorithms = await driver.list(root)
    except PathNotFound:
        return found
    for alg_dir in algorithms:
        with contextlib.suppress(PathNotFound):
            for entry in await driver.list(alg_dir):
                with contextlib.suppress(InvalidDigest):
                    found.append(Digest.parse(
                        f"{posixpath.basename(alg_dir)}:{posixpath.basename(entry)}"
                    ))
    return found


async def delete_repository_files(driver: StorageDriver, name: str) -> list[Digest]:
    """Delete ``name``'s ``_manifests``, ``_layers`` and ``_uploads``; NameUnknown if none.

    Repositories nested below it (``name/child``) live in the same directory and are
    left alone; blobs stay for garbage collection. Returns the layer digests that
    were linked (for the caller to drop from caches).
    """
    root = paths.repository_path(name)
    try:
        children = {posixpath.basename(c) for c in await driver.list(root)}
    except PathNotFound:
        raise NameUnknown(name) from None
    if not children & {"_manifests", "_layers"}:
        raise NameUnknown(name)
    unlinked = await _linked(driver, paths.layers_root(name))
    for part in _OWN:
        if part in children:
            with contextlib.suppress(PathNotFound):
                await driver.delete(f"{root}/{part}")
    if not children - set(_OWN):
        with contextlib.suppress(PathNotFound):
            await driver.delete(root)
    return unlinked
