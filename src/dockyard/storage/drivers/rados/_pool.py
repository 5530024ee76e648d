"""The pool: librados (imported here, lazily by the factory), object names, directory omaps.

Every librados call blocks, so each runs in a thread (:meth:`RadosPool._call`); librados
is thread-safe and its Python binding releases the GIL while it waits. The connection is
opened on first use in the process that uses it, so a driver built before ``--workers``
fork never shares a socket with its workers.
"""

from __future__ import annotations

import asyncio
import glob
import importlib
import importlib.util
import os
import posixpath
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from dockyard.storage.drivers.base import PathNotFound, StorageError
from dockyard.storage.drivers.params import DriverConfigError
from dockyard.storage.drivers.rados._params import RadosParameters

__all__ = ["DIR_MARK", "FileMeta", "RadosPool", "import_rados"]

T = TypeVar("T")
DIR_MARK = "/"
"""An omap value naming a subdirectory; a file's value is its object id (hex)."""
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
INSTALL_HINT = (
    "apt-get install python3-rados (Debian's bindings; a Python other than Debian's "
    "finds them in /usr/lib/python3/dist-packages when its version matches)"
)
OMAP_PAGE = 1000
OP_TIMEOUT = "60"
"""Seconds a librados operation (or the connection) may take before it fails, where
ceph.conf does not say (``rados osd op timeout``, ``rados mon op timeout``)."""
_FORKED_AWAY: list[tuple[Any, Any]] = []
"""Connections a forked worker inherited and must not use nor shut down."""


def import_rados() -> ModuleType:
    """The ``rados`` module: importable as is, or Debian's build for this very Python
    version loaded from dist-packages by file (only that module, not the directory)."""
    try:
        return importlib.import_module("rados")
    except ImportError as exc:
        error: ImportError = exc
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}-"
    for path in sorted(glob.glob(os.path.join(DIST_PACKAGES, f"rados.{tag}*.so"))):
        spec = importlib.util.spec_from_file_location("rados", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:
            error = exc
            continue
        sys.modules["rados"] = module
        return module
    raise DriverConfigError(
        f"storage.rados: the rados driver needs Ceph's rados Python module: {INSTALL_HINT} "
        f"({error})"
    )


class FileMeta:
    """A file's object id and what the xattrs of its first stripe say.

    ``owner`` is the one name whose removal removes the stripes (None: written before
    owners were kept, owned by any name that refers to it).
    """

    __slots__ = ("mtime", "oid", "owner", "size", "stripe")

    def __init__(
        self, oid: str, size: int, stripe: int, mtime: float, owner: str | None = None
    ) -> None:
        self.oid, self.size, self.stripe, self.mtime = oid, size, stripe, mtime
        self.owner = owner

    def owned_by(self, path: str) -> bool:
        """Whether removing name ``path`` must remove the stripes."""
        return self.owner is None or self.owner == path


def dir_object(path: str) -> str:
    """The object whose omap lists directory ``path`` (``/`` included)."""
    return "dir:" + path


def stripe_object(oid: str, index: int) -> str:
    return f"{oid}.{index}"


class RadosPool:
    """The connection to one pool (and namespace), and the directory hierarchy in omaps.

    A directory's omap maps each child's name to :data:`DIR_MARK` (a subdirectory, which
    has its own directory object) or to a file's object id. File data lives in stripes
    ``<oid>.<n>`` of ``stripe`` bytes; the first stripe's xattrs hold ``size`` (the bytes
    that count: anything a crashed write left beyond is ignored), ``stripe`` and ``mtime``.
    """

    name = "rados"

    def __init__(self, params: RadosParameters) -> None:
        self.params = params
        self.chunk_size = params.chunk_size
        self._rados = import_rados()
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._ioctx: Any = None
        self._pid = 0

    # -- connection and calls -----------------------------------------------------------

    def _connect(self) -> Any:
        with self._lock:
            if self._ioctx is not None and self._pid == os.getpid():
                return self._ioctx
            if self._cluster is not None:
                # Inherited through fork: librados' threads did not come along, so
                # shutting it down here could hang; keep it, unused, instead.
                _FORKED_AWAY.append((self._cluster, self._ioctx))
                self._cluster = self._ioctx = None
            rados = self._rados
            kwargs: dict[str, Any] = {"conffile": self.params.conffile or ""}
            if self.params.username:
                kwargs["rados_id"] = self.params.username
            cluster = None
            try:
                cluster = rados.Rados(**kwargs)
                # A backend that does not answer is an error (503), not a request waiting
                # forever (librados' default, 0), unless ceph.conf sets a timeout.
                for option in ("rados_osd_op_timeout", "rados_mon_op_timeout"):
                    if float(cluster.conf_get(option) or 0) == 0:
                        cluster.conf_set(option, OP_TIMEOUT)
                cluster.connect(timeout=int(OP_TIMEOUT))
                ioctx = cluster.open_ioctx(self.params.pool)
            except rados.Error as exc:
                if cluster is not None:
                    cluster.shutdown()
                raise StorageError(
                    f"cannot open pool {self.params.pool!r}: {exc}", self.name
                ) from None
            if self.params.namespace:
                ioctx.set_namespace(self.params.namespace)
            self._cluster, self._ioctx, self._pid = cluster, ioctx, os.getpid()
            return ioctx

    async def _call(self, path: str, fn: Callable[[Any], T]) -> T:
        """``fn(ioctx)`` in a thread; librados errors become storage errors about ``path``."""

        def run() -> T:
            ioctx = self._connect()
            try:
                return fn(ioctx)
            except self._rados.ObjectNotFound:
                raise PathNotFound(path, self.name) from None
            except self._rados.Error as exc:
                raise StorageError(f"{path}: {exc}", self.name) from None

        return await asyncio.to_thread(run)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._ioctx is not None and self._pid == os.getpid():
                    self._ioctx.close()
                    self._cluster.shutdown()
                self._ioctx = self._cluster = None

        await asyncio.to_thread(close)

    # -- omaps (called in the thread) -----------------------------------------------------

    def omap_get(self, ioctx: Any, obj: str, key: str) -> str | None:
        """The value of ``key`` in ``obj``'s omap (None if absent); ObjectNotFound if
        the object does not exist."""
        rados = self._rados
        with rados.ReadOpCtx() as op:
            it, _ = ioctx.get_omap_vals_by_keys(op, (key,))
            ioctx.operate_read_op(op, obj)
            for _, value in it:
                return bytes(value).decode()
        return None

    def omap_items(self, ioctx: Any, obj: str) -> list[tuple[str, str]]:
        """Every (name, value) of ``obj``'s omap, in name order; ObjectNotFound if none."""
        rados = self._rados
        out: list[tuple[str, str]] = []
        after = ""
        while True:
            with rados.ReadOpCtx() as op:
                it, _ = ioctx.get_omap_vals(op, after, "", OMAP_PAGE)
                ioctx.operate_read_op(op, obj)
                page = [(k, bytes(v).decode()) for k, v in it]
            out += page
            if len(page) < OMAP_PAGE:
                return out
            after = page[-1][0]

    def omap_set(
        self, ioctx: Any, obj: str, key: str, value: str, *, expect: str | None = None
    ) -> None:
        """Set ``key``; with ``expect``, only if it holds ``expect`` now, ``""`` meaning
        absent (an atomic check: a rados.Error with ECANCELED when it fails)."""
        rados = self._rados
        with rados.WriteOpCtx() as op:
            if expect is not None:
                # In the same operation, so a directory's first entry is checked too.
                op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)
                op.omap_cmp(key, expect, rados.LIBRADOS_CMPXATTR_OP_EQ)
            ioctx.set_omap(op, (key,), (value.encode(),))
            ioctx.operate_write_op(op, obj)

    def omap_remove(self, ioctx: Any, obj: str, key: str, *, expect: str | None = None) -> None:
        rados = self._rados
        with rados.WriteOpCtx() as op:
            if expect is not None:
                op.omap_cmp(key, expect, rados.LIBRADOS_CMPXATTR_OP_EQ)
            ioctx.remove_omap_keys(op, (key,))
            ioctx.operate_write_op(op, obj)

    # -- the hierarchy (in the thread) ----------------------------------------------------

    def lookup(self, ioctx: Any, path: str) -> str | None:
        """What the parent's omap says about ``path``: DIR_MARK, an oid, or None."""
        if path == "/":
            return DIR_MARK
        try:
            return self.omap_get(
                ioctx, dir_object(posixpath.dirname(path)), posixpath.basename(path)
            )
        except self._rados.ObjectNotFound:
            return None

    def file_meta(self, ioctx: Any, oid: str) -> FileMeta:
        """The xattrs of the first stripe of ``oid`` (ObjectNotFound if it is gone)."""
        attrs = {k: bytes(v).decode() for k, v in ioctx.get_xattrs(stripe_object(oid, 0))}
        return FileMeta(
            oid,
            int(attrs.get("size", "0")),
            int(attrs.get("stripe", str(self.chunk_size))),
            float(attrs.get("mtime", "0")),
            attrs.get("owner"),
        )

    def ensure_parents(self, ioctx: Any, path: str) -> None:
        """Make the directories above file ``path`` exist, refusing to go below a file.

        The look goes up from the file and stops at the first directory listed, so
        missing ones are linked top-down, each once its parent is listed: a process
        killed between two links leaves every listed directory reachable from the root,
        and the next write below links the rest. (Linked bottom-up, a kill left the
        lower ones listed under a directory its own parent did not list: the next write
        of the same file stopped there, and a walk never saw it.) A directory's object
        is made by the first omap write into it, so a listed directory may have none
        yet: it lists as empty.
        """
        missing: list[str] = []
        directory = posixpath.dirname(path)
        while directory != "/":
            entry = self.lookup(ioctx, directory)
            if entry == DIR_MARK:
                break
            if entry is not None:
                raise StorageError(f"not a directory: {directory}", self.name)
            missing.append(directory)
            directory = posixpath.dirname(directory)
        for directory in reversed(missing):  # the highest first
            self.omap_set(
                ioctx, dir_object(posixpath.dirname(directory)),
                posixpath.basename(directory), DIR_MARK,
            )

    def remove_stripes(self, ioctx: Any, oid: str, size_hint: int = 0, stripe: int = 1) -> None:
        """Remove every stripe of ``oid``: those ``size_hint`` covers, then on until one
        is missing (a crashed write may have left more)."""
        index = 0
        expected = max(1, -(-size_hint // max(stripe, 1)))
        while True:
            try:
                ioctx.remove_object(stripe_object(oid, index))
            except self._rados.ObjectNotFound:
                if index >= expected:
                    return
            index += 1

    def unlink_file(self, ioctx: Any, path: str, oid: str) -> None:
        """Remove file ``path`` if it is still ``oid``, then its stripes if ``path`` owns
        them (a move interrupted between its two omap updates leaves the source's name
        on stripes the destination owns: those stay)."""
        parent, name = dir_object(posixpath.dirname(path)), posixpath.basename(path)
        try:
            self.omap_remove(ioctx, parent, name, expect=oid)
        except self._rados.ObjectNotFound:
            raise
        except self._rados.Error:
            return  # replaced meanwhile: the new file stays (and its stripes)
        try:
            meta = self.file_meta(ioctx, oid)
        except self._rados.ObjectNotFound:
            meta = FileMeta(oid, 0, 1, 0.0)
        if meta.owned_by(path):
            self.remove_stripes(ioctx, oid, meta.size, meta.stripe)

    def now(self) -> str:
        return repr(time.time())
