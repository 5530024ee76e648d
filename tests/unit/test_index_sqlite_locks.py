"""SQLite's locks on the index survive dockyard's own look at the WAL index.

SQLite marks a database in use by a shared POSIX lock on its ``-shm`` file; a process
that opens the database and finds no such lock truncates that file and starts the WAL
afresh. POSIX locks belong to the process and go when it closes *any* descriptor of the
file, so a descriptor dockyard opens on ``-shm`` (to read the WAL index without a query)
must stay open while SQLite uses the file. When it did not, a command or a restarted
worker opening the index truncated ``-shm`` under a running worker, whose next commit
died of SIGBUS (CI: online GC while pushing, 2026-12-07).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dockyard.index.db import Stmt
from dockyard.index.sqlite import SqliteDatabase

# Where SQLite's unix VFS keeps its "in use" lock in -shm: UNIX_SHM_DMS, byte 128.
_DMS = 128

# A worker: writes to the index (so its WAL index is mapped), waits while another
# process opens the database, then writes again and reads back.
_WORKER = textwrap.dedent("""
    import asyncio, sys
    from dockyard.index.db import Stmt
    from dockyard.index.sqlite import SqliteDatabase

    # One transaction of more WAL frames than the first 32 KiB of -shm index (4,096):
    # the worker maps a second region of it.
    BIG = ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 4500) "
           "INSERT INTO t SELECT ?, randomblob(4000) FROM c")

    async def main(path):
        db = SqliteDatabase(path)
        await db.write([Stmt("CREATE TABLE t (n INTEGER, b BLOB)")])
        await db.write([Stmt(BIG, (1,))])
        await db.fetch("PRAGMA wal_checkpoint(TRUNCATE)")
        await db.write([Stmt("INSERT INTO t VALUES (2, NULL)")])  # a fresh, short WAL
        assert db.state() is not None, "the WAL index is not mapped"
        print("ready", flush=True)
        sys.stdin.readline()  # another process opens the database meanwhile
        await db.write([Stmt(BIG, (3,))])  # the second region again
        print("wrote", flush=True)
        sys.stdin.readline()  # a third one writes
        print(len(await db.fetch("SELECT DISTINCT n FROM t")), flush=True)
        await db.aclose()

    asyncio.run(main(sys.argv[1]))
""")


def _dms_is_held(path: str) -> bool:
    """Whether some process holds SQLite's "in use" lock on ``path``'s -shm file (taken
    from a child, as our own locks would not conflict with this process's)."""
    probe = textwrap.dedent(f"""
        import fcntl, os, sys
        try:
            fd = os.open({path + "-shm"!r}, os.O_RDWR)
        except FileNotFoundError:  # SQLite removes it after the last connection
            sys.exit(0)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, {_DMS})
        except OSError:
            sys.exit(1)
        sys.exit(0)
    """)
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 1


def test_the_in_use_lock_is_kept_while_the_wal_index_is_read(tmp_path: Path) -> None:
    """SQLite's lock stays while a connection of this process is open, and goes with
    the last."""
    path = str(tmp_path / "index.db")

    async def run() -> None:
        db = SqliteDatabase(path)
        await db.write([Stmt("CREATE TABLE t (n INTEGER)")])
        assert db.state() is not None
        assert _dms_is_held(path), "SQLite's lock on -shm was dropped"
        # Two databases of one file in a process (the index and a job's): the first
        # to close leaves the other's locks.
        other = SqliteDatabase(path)
        await other.write([Stmt("INSERT INTO t VALUES (1)")])
        assert other.state() is not None
        await db.aclose()
        assert _dms_is_held(path), "closing one database dropped the other's lock"
        assert other.state() is not None
        await other.aclose()
        assert not _dms_is_held(path)

    asyncio.run(run())


def _sql(path: str, sql: str) -> str:
    """``sql`` run by another process with a connection of its own (a command beside
    the server, `dockyard gc` or `index verify`, or another worker); its first value."""
    done = subprocess.run([sys.executable, "-c", (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "row = c.execute(sys.argv[2]).fetchone(); print(row[0] if row else ''); c.close()"),
        path, sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_processes_opening_the_index_beside_a_worker_share_its_wal(tmp_path: Path) -> None:
    """Others open the index, read and write while a worker writes: every process sees
    every commit, and nothing is lost (with the lock dropped, the first to close took
    itself for the last user and deleted the WAL the worker went on writing to)."""
    path = str(tmp_path / "index.db")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    assert worker.stdout is not None and worker.stdin is not None
    try:
        assert worker.stdout.readline().strip() == "ready"
        assert _sql(path, "SELECT count(DISTINCT n) FROM t") == "2"
        worker.stdin.write("go\n")
        worker.stdin.flush()
        wrote = worker.stdout.readline().strip()
        assert wrote == "wrote", f"the worker died ({worker.wait(30)})"
        _sql(path, "INSERT INTO t VALUES (4, NULL)")
        worker.stdin.write("go\n")
        worker.stdin.flush()
        seen = worker.stdout.readline().strip()
        assert worker.wait(30) == 0, f"the worker died ({worker.returncode})"
        assert seen == "4", "the worker does not see the other process's write"
    finally:
        if worker.poll() is None:
            worker.kill()
    assert _sql(path, "SELECT count(*) FROM t") == str(2 * 4500 + 2)
