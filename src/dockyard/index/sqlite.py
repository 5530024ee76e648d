"""The embedded index database: SQLite in WAL mode, used from one worker thread.

Every call runs in a single-thread executor, so the event loop never blocks on
the file and the connection is only ever used by one thread. WAL lets readers
in other processes (``--workers N``, ``dockyard index verify`` beside the
server) go on while one writes. Writers of a file first queue on an exclusive
``flock`` of ``<index>.writer``, then take SQLite's lock (``BEGIN IMMEDIATE``,
with a generous busy timeout for writers that do not take the ``flock``): the
kernel wakes the next writer the moment the lock is let go, where SQLite's busy
handler polls, sleeping 1 to 100 ms between tries, which with two workers pushing
at once left both idle much of the time. A process that forks after using the
index opens a fresh connection in the child.

:meth:`SqliteDatabase.state` tells whether anything was committed since an earlier
look without asking SQLite: it reads the WAL index header from SQLite's shared-memory
file, so callers keep what they read (a tag list) until someone commits. That holds for
the writers that take the ``flock`` (every dockyard process); a write by another program
is seen at its commit too, but must not run while a dockyard writer holds the lock.

Writes that arrive while a transaction is being written share the next one (group
commit): each stays all-or-nothing in a savepoint of its own, and the pages they
have in common (a repository's row, the index entries of layers many manifests
share) reach the write-ahead log once per batch instead of once per write. Under
concurrent pushes the one writer thread, which every worker process queues on, is
what bounds manifest PUTs per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import mmap
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dockyard.index.db import Row, Stmt, Written
from dockyard.index.schema import MIGRATIONS, Dialect, migration_sql

__all__ = ["MEMORY", "SqliteDatabase"]

T = TypeVar("T")

MEMORY = ":memory:"
"""The path of an in-memory database (the index of the ``inmemory`` storage driver)."""

_BUSY_TIMEOUT_MS = 60_000

_WAL_HEADER = 48
"""Bytes of the WAL index header (https://www.sqlite.org/walformat.html), kept twice at
the start of ``<db>-shm``."""


class _WalState:
    """The WAL index header of a database, read from a shared mapping of its ``-shm``
    file: a memory copy, no system call, no lock.

    Every commit rewrites it (its ``iChange`` counter, the WAL's frame count, and the
    salts when the WAL restarts); a writer writes the second copy, then the first, and a
    reader that finds them different looked during a write (SQLite's readers do the
    same: ``walIndexTryHdr``).

    The descriptor the mapping is made from stays open until this process's last
    connection to the database has closed (:func:`_acquire_wal` counts them): closing a
    descriptor of a file drops every POSIX lock the process holds on it, SQLite's too.
    Among those is the one that marks the database in use; without it the next process
    to open the database (a command, a new worker) truncates ``-shm`` under this one's
    mapping, and SQLite here died of SIGBUS at a later commit.
    """

    def __init__(self, path: str) -> None:
        # Looked at before opening: a descriptor opened is never closed early (above).
        if os.stat(path + "-shm").st_size < 2 * _WAL_HEADER:
            raise OSError(f"{path}-shm: no WAL index yet")
        self._fd = os.open(path + "-shm", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._map: mmap.mmap | None = mmap.mmap(
                self._fd, 2 * _WAL_HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError):
            self._map = None  # kept unmapped (and open) until released

    def read(self) -> bytes | None:
        """The header; None while a writer changes it or before it was initialised."""
        if self._map is None:
            return None
        first = self._map[:_WAL_HEADER]
        second = self._map[_WAL_HEADER : 2 * _WAL_HEADER]
        if first != second or not first[12]:  # isInit
            return None
        return first

    def close(self) -> None:
        """Unmap and close: only once no connection of this process uses the database."""
        if self._map is not None:
            self._map.close()
        os.close(self._fd)


# This process's WAL index mappings by database path, with how many of its open
# connections use each; forgotten, never closed, in a forked child (see _wal_shares).
_shares: dict[str, tuple[_WalState, int]] = {}
_shares_pid = os.getpid()
_shares_lock = threading.Lock()  # connections open and close in threads of their own


def _wal_shares() -> dict[str, tuple[_WalState, int]]:
    """This process's shares (call with ``_shares_lock`` held). A child of ``fork()``
    starts afresh and leaves its parent's descriptors open: the child's own connections
    lock the files, and closing a descriptor would drop those locks."""
    global _shares, _shares_pid
    if _shares_pid != os.getpid():
        _shares, _shares_pid = {}, os.getpid()
    return _shares


def _acquire_wal(path: str) -> _WalState:
    """The WAL index of ``path`` for one more connection; OSError while there is none."""
    key = os.path.realpath(path)
    with _shares_lock:
        shares = _wal_shares()
        state, users = shares.get(key) or (_WalState(path), 0)
        shares[key] = (state, users + 1)
        return state


def _release_wal(path: str) -> None:
    """One connection fewer uses the WAL index of ``path``; closed after the last."""
    key = os.path.realpath(path)
    with _shares_lock:
        shares = _wal_shares()
        state, users = shares.pop(key)
        if users > 1:
            shares[key] = (state, users - 1)
        else:
            state.close()


class SqliteDatabase:
    """One SQLite file (or :data:`MEMORY`), opened lazily in this process."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = "memory" if path == MEMORY else path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        # Writes waiting for the next transaction, and whether a task is committing.
        self._queued: list[tuple[Sequence[Stmt], asyncio.Future[Written]]] = []
        self._committing = False
        self._commits: set[asyncio.Task[None]] = set()
        self._writer_lock = -1  # the descriptor of <path>.writer, opened when first used
        self._wal: _WalState | None = None  # the file's WAL index, mapped once it exists
        self._commit_count = 0  # the state of an in-memory database: only we write to it

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != MEMORY:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=_BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            if self.path != MEMORY:
                self._writer_lock = os.open(
                    self.path + ".writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
                conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives a process crash; only an OS crash
                # may lose the last ones, which verify/rebuild repairs from storage.
                conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
            self._map_wal()
        return self._conn

    def _map_wal(self) -> None:
        """Map the WAL index if there is one yet (in the database's thread)."""
        if self._wal is None and self.path != MEMORY and self._conn is not None:
            with contextlib.suppress(OSError):
                self._wal = _acquire_wal(self.path)

    def state(self) -> object | None:
        if self.path == MEMORY:
            return self._commit_count if self._conn is not None else None
        wal = self._wal
        return wal.read() if wal is not None and self._pid == os.getpid() else None

    def _committed(self) -> object | None:
        """After a commit, in the database's thread while no other writer can commit:
        the state that commit left."""
        if self.path == MEMORY:
            self._commit_count += 1
            return self._commit_count
        self._map_wal()
        return self.state()

    def _forked(self) -> None:
        if self._pid != os.getpid():
            # Never use a connection, thread or queue inherited through fork().
            self._conn, self._executor, self._pid = None, None, os.getpid()
            self._queued, self._committing = [], False
            self._writer_lock = -1  # the parent's descriptor: its lock is not ours
            self._wal = None  # the parent's mapping; ours is made with our connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self._forked()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="dockyard-index")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connect()))

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return await self._run(lambda conn: conn.execute(sql, tuple(params)).fetchall())

    async def write(self, statements: Sequence[Stmt]) -> Written:
        self._forked()
        done: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._queued.append((statements, done))
        if not self._committing:
            self._committing = True
            task = asyncio.get_running_loop().create_task(self._commit_queued())
            # Held by the loop until done; the writers await their own futures.
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)
        return await done

    async def _commit_queued(self) -> None:
        """Commit what is queued, one transaction at a time, until nothing is."""
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                writes = [statements for statements, _ in batch]
                state: object | None = None
                try:
                    outcomes, state = await self._run(self._commit_locked(writes))
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                except BaseException:
                    for _, done in batch:
                        done.cancel()
                    raise
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if done.done():  # the writer was cancelled; its write stands
                        continue
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        # The state after a shared commit tells one write nothing.
                        done.set_result(Written(outcome, state if len(batch) == 1 else None))
        finally:
            self._committing = False

    def _commit_locked(
        self, writes: list[Sequence[Stmt]]
    ) -> Callable[[sqlite3.Connection], tuple[list[Outcome], object | None]]:
        def work(conn: sqlite3.Connection) -> tuple[list[Outcome], object | None]:
            with self._locked():
                outcomes = _commit(conn, writes)
                return outcomes, self._committed()

        return work

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' ``flock`` (none for an in-memory database), in the thread."""
        lock = self._writer_lock  # set by _connect, which ran just before
        if lock < 0:
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    async def migrate(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            with self._locked():
                return migrate(conn)

        def migrate(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
                current = int(row[0] or 0)
                for version in range(current + 1, len(MIGRATIONS) + 1):
                    for sql in migration_sql(version, "sqlite"):
                        conn.execute(sql)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._committed()
            return max(current, len(MIGRATIONS))

        return await self._run(work)

    async def aclose(self) -> None:
        if self._executor is None or self._pid != os.getpid():
            return
        if self._commits:  # queued writes are committed, not dropped
            await asyncio.gather(*self._commits, return_exceptions=True)
        conn, mapped = self._conn, self._wal is not None
        self._wal = None  # state() no longer reads it
        if conn is not None:
            await self._run(lambda c: c.close())
        if mapped:  # after the connection: see _WalState
            _release_wal(self.path)
        self._executor.shutdown(wait=True)
        self._conn, self._executor = None, None
        if self._writer_lock >= 0:
            os.close(self._writer_lock)
            self._writer_lock = -1


Outcome = list[Row] | Exception
"""A write's rows (:attr:`Written.rows`), or what it raised."""


def _commit(conn: sqlite3.Connection, writes: list[Sequence[Stmt]]) -> list[Outcome]:
    """Run the writes in one transaction; each one's rows or what it raised. A write
    that fails leaves nothing behind and fails alone.

    They run first without a savepoint each: a savepoint copies every page its write
    changes into SQLite's sub-journal (some 16 for a manifest), which past 64 KiB spills
    to a temporary file, so a batch wrote each page twice more and made a file. Writes
    almost never fail; when one does, the transaction is rolled back and, if others
    shared it, run again with a savepoint per write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes: list[Outcome] = [_execute(conn, statements) for statements in writes]
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        if len(writes) == 1:
            return [exc]
        return _commit_apart(conn, writes)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    _finish(conn)
    return outcomes


def _commit_apart(conn: sqlite3.Connection, writes: list[Sequence[Stmt]]) -> list[Outcome]:
    """:func:`_commit` with each write in a savepoint of its own, so that one that
    fails is undone alone."""
    conn.execute("BEGIN IMMEDIATE")
    outcomes: list[Outcome] = []
    try:
        for statements in writes:
            conn.execute("SAVEPOINT write")
            try:
                outcomes.append(_execute(conn, statements))
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK TO write")
                outcomes.append(exc)
            conn.execute("RELEASE write")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    _finish(conn)
    return outcomes


def _finish(conn: sqlite3.Connection) -> None:
    """Commit the open transaction; roll it back if that fails."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _execute(conn: sqlite3.Connection, statements: Sequence[Stmt]) -> list[Row]:
    """The statements of one write, in order; the first rows of those ``returning``."""
    rows: list[Row] = []
    for stmt in statements:
        if stmt.many is not None:
            conn.executemany(stmt.sql, stmt.many)
        elif stmt.returning:
            # All of them fetched: SQLite finishes the statement only then.
            found = conn.execute(stmt.sql, tuple(stmt.params)).fetchall()
            rows.append(tuple(found[0]) if found else ())
        else:
            conn.execute(stmt.sql, tuple(stmt.params))
    return rows
