"""The RADOS driver: the StorageDriver contract on top of :class:`RadosPool`.

Each operation is one function run in a thread (several librados calls in a row), so a
request costs one thread hop per operation rather than per round trip.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import posixpath
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dockyard.storage.drivers.base import (
    FileInfo,
    InvalidOffset,
    PathNotFound,
    StorageError,
    walk_scanned,
)
from dockyard.storage.drivers.rados._params import RadosParameters
from dockyard.storage.drivers.rados._pool import (
    DIR_MARK,
    FileMeta,
    RadosPool,
    dir_object,
    stripe_object,
)
from dockyard.storage.drivers.rados._writer import StripeWriter, save_size

__all__ = ["RadosDriver"]

READ_UNIT = 4 << 20
"""Bytes fetched per librados read (one read ahead while the last is sent)."""
YIELD_CHUNK = 1 << 20
"""Largest chunk ``reader`` yields."""
RETRIES = 8
"""Attempts of an operation that lost a race with a replacing ``put_content``."""


class RadosDriver(RadosPool):
    """Files striped over RADOS objects, directories in omaps; see the package docstring."""

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> RadosDriver:
        """``storage.rados`` (``redirect`` does not apply: RADOS has no URLs)."""
        return cls(RadosParameters(params))

    # -- helpers run in the thread ------------------------------------------------------

    def _file(self, ioctx: Any, path: str) -> FileMeta:
        """The file at ``path``: PathNotFound if none, or if a directory is there (no
        content at that name, as an object store answers), or if the name stays on
        stripes that are gone (left so by a removal killed before names went first, or
        by a move cut short whose destination was replaced since): no file is there."""
        gone: str | None = None
        for _ in range(RETRIES):
            entry = self.lookup(ioctx, path)
            if entry is None or entry in (DIR_MARK, gone):
                raise PathNotFound(path, self.name)
            try:
                meta = self.file_meta(ioctx, entry)
            except self._rados.ObjectNotFound:
                gone = entry  # replaced meanwhile (look again), or a name left behind
                continue
            if self._moved_away(ioctx, path, meta):
                raise PathNotFound(path, self.name)
            return meta
        raise StorageError(f"{path} keeps changing", self.name)

    def _moved_away(self, ioctx: Any, path: str, meta: FileMeta) -> bool:
        """Whether ``path`` is the source of a move cut short after it named the
        destination (see _move): the move has happened, and the name left behind is no
        file. Written through, it would cut back and change the destination's data (a
        published blob) under its readers."""
        return not meta.owned_by(path) and self.lookup(ioctx, meta.owner or "/") == meta.oid

    def _new_file(self, ioctx: Any, path: str, data: bytes) -> None:
        """Write ``data`` as a new object id, then make ``path`` name it (atomically:
        readers see the old or the new file), then remove the old one's stripes."""
        entry = self.lookup(ioctx, path)
        if entry == DIR_MARK:
            raise StorageError(f"is a directory: {path}", self.name)
        self.ensure_parents(ioctx, path)
        oid = uuid.uuid4().hex
        stripe = self.chunk_size
        rados = self._rados
        with rados.WriteOpCtx() as op:
            op.write_full(data[:stripe])
            op.set_xattr("stripe", str(stripe).encode())
            op.set_xattr("size", str(len(data)).encode())
            op.set_xattr("mtime", self.now().encode())
            op.set_xattr("owner", path.encode())
            ioctx.operate_write_op(op, stripe_object(oid, 0))
        for index, start in enumerate(range(stripe, len(data), stripe), 1):
            ioctx.write_full(stripe_object(oid, index), data[start : start + stripe])
        try:
            entry = self._swap(ioctx, path, entry, oid)
        except BaseException:
            self.remove_stripes(ioctx, oid, len(data), stripe)
            raise
        if entry is not None:
            self._drop(ioctx, entry, path)

    def _swap(self, ioctx: Any, path: str, entry: str | None, oid: str) -> str | None:
        """Make ``path`` name ``oid`` if it still names ``entry`` (None: nothing), else
        look again and retry: of racing writers, each replaces the one before, and each
        file replaced is returned to exactly one of them, to remove."""
        parent, name = dir_object(posixpath.dirname(path)), posixpath.basename(path)
        for _ in range(RETRIES):
            try:
                self.omap_set(ioctx, parent, name, oid, expect=entry or "")
                return entry
            except self._rados.ObjectNotFound:
                raise
            except self._rados.Error:  # another writer replaced it first
                entry = self.lookup(ioctx, path)
                if entry == DIR_MARK:
                    raise StorageError(f"is a directory: {path}", self.name) from None
        raise StorageError(f"{path} keeps changing", self.name)

    def _drop(self, ioctx: Any, oid: str, path: str) -> None:
        """Remove the stripes of a file name ``path`` no longer refers to, if it owned
        them."""
        try:
            meta = self.file_meta(ioctx, oid)
        except self._rados.ObjectNotFound:
            return
        if meta.owned_by(path):
            self.remove_stripes(ioctx, oid, meta.size, meta.stripe)

    def _read(self, ioctx: Any, meta: FileMeta, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start``, within one stripe."""
        index, inner = divmod(start, meta.stripe)
        length = min(length, meta.stripe - inner, meta.size - start)
        data: bytes = ioctx.read(stripe_object(meta.oid, index), length, inner)
        if len(data) < length:
            raise StorageError(
                f"stripe {index} of {meta.oid} is short ({len(data)} < {length})", self.name
            )
        return data

    def _whole(self, ioctx: Any, path: str) -> bytes:
        for _ in range(RETRIES):
            meta = self._file(ioctx, path)
            try:
                return b"".join(
                    self._read(ioctx, meta, start, meta.stripe)
                    for start in range(0, meta.size, meta.stripe)
                )
            except self._rados.ObjectNotFound:
                continue  # replaced while read
        raise StorageError(f"{path} keeps changing", self.name)

    def _open(self, ioctx: Any, path: str, offset: int) -> FileMeta:
        """The file to continue at ``offset``, cut back there (``writer(path, offset)``)."""
        meta = self._file(ioctx, path)
        if meta.size < offset:
            raise InvalidOffset(path, offset, self.name)
        if meta.size == offset:
            return meta
        save_size(self, ioctx, meta.oid, offset)  # first: bytes past it stop counting
        index, inner = divmod(offset, meta.stripe)
        if inner or index == 0:
            ioctx.trunc(stripe_object(meta.oid, index), inner)
            index += 1
        while True:
            try:
                ioctx.remove_object(stripe_object(meta.oid, index))
            except self._rados.ObjectNotFound:
                break
            index += 1
        meta.size = offset
        return meta

    def _remove(self, ioctx: Any, path: str) -> None:
        entry = self.lookup(ioctx, path)
        if entry is None:
            raise PathNotFound(path, self.name)
        if entry != DIR_MARK:
            self.unlink_file(ioctx, path, entry)
            return
        self._remove_tree(ioctx, path)
        self.omap_remove(
            ioctx, dir_object(posixpath.dirname(path)), posixpath.basename(path), expect=DIR_MARK
        )

    def _remove_tree(self, ioctx: Any, directory: str) -> None:
        """Remove ``directory``'s object, its subdirectories' first, and only then the
        stripes of the files it named: a process killed meanwhile leaves stripes no name
        refers to, never a name on stripes that are gone (as ``unlink_file``)."""
        try:
            children = self.omap_items(ioctx, dir_object(directory))
        except self._rados.ObjectNotFound:
            return
        for name, value in children:
            if value == DIR_MARK:
                self._remove_tree(ioctx, posixpath.join(directory, name))
        ioctx.remove_object(dir_object(directory))
        for name, value in children:
            if value != DIR_MARK:  # not when a move took them (see _move)
                self._drop(ioctx, value, posixpath.join(directory, name))

    def _move(self, ioctx: Any, source: str, dest: str) -> None:
        entry = self.lookup(ioctx, source)
        if entry is None:
            raise PathNotFound(source, self.name)
        if entry == DIR_MARK:
            raise StorageError(f"cannot move a directory: {source}", self.name)
        if source == dest:
            return
        old = self.lookup(ioctx, dest)
        if old == DIR_MARK:
            raise StorageError(f"is a directory: {dest}", self.name)
        self.ensure_parents(ioctx, dest)
        # The stripes change owner before either name changes: a crash between the two
        # omap updates below leaves both names on them, and removing the source's (an
        # upload directory cleaned up) must not take the destination's data with it.
        try:
            self.file_meta(ioctx, entry)
        except self._rados.ObjectNotFound:
            raise PathNotFound(source, self.name) from None
        ioctx.set_xattr(stripe_object(entry, 0), "owner", dest.encode())
        old = self._swap(ioctx, dest, old, entry)
        # Replaced meanwhile by a new file (the compare fails): that one stays.
        with contextlib.suppress(self._rados.Error):
            self.omap_remove(
                ioctx, dir_object(posixpath.dirname(source)), posixpath.basename(source),
                expect=entry,
            )
        if old is not None and old != entry:
            self._drop(ioctx, old, dest)

    def _children(self, ioctx: Any, path: str) -> builtins.list[FileInfo]:
        """The direct children of directory ``path``, sorted, files with their sizes."""
        try:
            items = self.omap_items(ioctx, dir_object(path))
        except self._rados.ObjectNotFound:
            # Listed, but nothing written into it yet (see ensure_parents): empty.
            if self.lookup(ioctx, path) == DIR_MARK:
                return []
            raise PathNotFound(path, self.name) from None
        out = []
        for name, value in items:
            child = posixpath.join(path, name)
            if value == DIR_MARK:
                out.append(FileInfo(child, 0, 0.0, True))
                continue
            try:
                meta = self.file_meta(ioctx, value)
            except self._rados.ObjectNotFound:
                continue  # removed or replaced meanwhile
            if self._moved_away(ioctx, child, meta):
                continue
            out.append(FileInfo(child, meta.size, meta.mtime, False))
        return out

    # -- the contract -------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        return await self._call(path, lambda io: self._whole(io, path))

    async def put_content(self, path: str, data: bytes) -> None:
        await self._call(path, lambda io: self._new_file(io, path, data))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        meta = await self._call(path, lambda io: self._file(io, path))
        if offset > meta.size:
            raise InvalidOffset(path, offset, self.name)

        def fetch(start: int) -> asyncio.Task[bytes]:
            return asyncio.ensure_future(
                self._call(path, lambda io: self._read(io, meta, start, READ_UNIT))
            )

        position = offset
        ahead = fetch(position) if position < meta.size else None
        try:
            while ahead is not None:
                data = await ahead
                position += len(data)
                ahead = fetch(position) if position < meta.size else None
                for start in range(0, len(data), YIELD_CHUNK):
                    yield data[start : start + YIELD_CHUNK]
        finally:
            if ahead is not None:
                ahead.cancel()

    async def writer(self, path: str, offset: int = 0) -> StripeWriter:
        if offset == 0:
            await self._call(path, lambda io: self._new_file(io, path, b""))
        meta = await self._call(path, lambda io: self._open(io, path, offset))
        return StripeWriter(self, path, meta, offset)

    async def stat(self, path: str) -> FileInfo:
        def run(io: Any) -> FileInfo:
            if self.lookup(io, path) == DIR_MARK:
                return FileInfo(path, 0, 0.0, True)
            meta = self._file(io, path)
            return FileInfo(path, meta.size, meta.mtime, False)

        return await self._call(path, run)

    async def _scan(self, path: str) -> builtins.list[FileInfo]:
        return await self._call(path, lambda io: self._children(io, path))

    async def list(self, path: str) -> builtins.list[str]:
        return [info.path for info in await self._scan(path)]

    async def move(self, source: str, dest: str) -> None:
        await self._call(source, lambda io: self._move(io, source, dest))

    async def delete(self, path: str) -> None:
        await self._call(path, lambda io: self._remove(io, path))

    async def redirect_url(self, path: str, method: str) -> str | None:
        return None  # RADOS objects have no URL a client could fetch

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return walk_scanned(self._scan, path)

    def local_path(self, path: str) -> str | None:
        return None
