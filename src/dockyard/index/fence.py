"""The fence between online garbage collection and manifest PUTs, in the index database.

A manifest PUT that references a blob the collector is deleting at that moment must
either keep the blob or be refused (``MANIFEST_BLOB_UNKNOWN``): never may a manifest
point at a deleted blob. Both sides write their intent, then read the other's (the
order of Dekker's algorithm), each in its own committed transaction of one database
(SQLite for the workers of one host, PostgreSQL for many hosts):

PUT (:meth:`BlobFence.hold`)
    1. insert a *claim* row for every digest the manifest references (its blobs, its
       child manifests, and its own digest) and commit;
    2. read the *sweeping* rows for those digests: if any, delete the claims and
       refuse the PUT with ``MANIFEST_BLOB_UNKNOWN`` (the client may push again);
    3. check that every blob exists, uncached (an in-memory descriptor cache of
       another worker may still describe a deleted blob), store the manifest, update
       the index (its ``manifest_refs`` now name the blobs);
    4. delete the claims.

Sweep (:meth:`BlobFence.begin_sweep`, :meth:`BlobFence.end_sweep`)
    1. insert a *sweeping* row for every candidate of a batch and commit;
    2. read the claims and the index's references (``manifests``, ``manifest_refs``)
       for those digests; drop every candidate that has either;
    3. delete the rest from storage;
    4. delete the sweeping rows.

Whichever order the two interleave in, one of them sees the other's row: if the
sweep's read comes after the PUT's claim, the blob is kept; otherwise the sweep's row
was committed before the PUT's read, and the PUT is refused. A PUT that completed
before the sweep's read is seen through the index's references, which the PUT wrote
before deleting its claims.

Crashes: a claim left by a dead PUT only keeps its blobs (the collector drops claims
older than :data:`CLAIM_TTL`); sweeping rows left by a dead collector are dropped by
the next collector (it holds the collection lease), and PUTs ignore rows older than
:data:`SWEEP_TTL` (the collector gives up a batch before that age).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Collection, Iterable

from dockyard.digest import Digest
from dockyard.errors import ManifestBlobUnknown
from dockyard.index.db import Database, Stmt

__all__ = ["CLAIM_TTL", "SWEEP_TTL", "BlobFence", "IndexLease"]

CLAIM_TTL = 3600.0
"""A claim older than this belongs to a PUT that died: the collector drops it."""

SWEEP_TTL = 600.0
"""A sweeping row older than this belongs to a collector that died: PUTs ignore it."""

SWEEP_GIVE_UP = 60.0
"""A batch whose rows are older than this when it would delete is given up (kept)."""

_TABLES = (
    "CREATE TABLE IF NOT EXISTS gc_claims (digest {text} NOT NULL, token {text} NOT NULL, "
    "claimed_at {real} NOT NULL, PRIMARY KEY (digest, token))",
    "CREATE TABLE IF NOT EXISTS gc_sweeping (digest {text} PRIMARY KEY, since {real} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gc_leases (name {text} PRIMARY KEY, token {text} NOT NULL, "
    "expires {real} NOT NULL)",
)
_TYPES = {
    "sqlite": {"text": "TEXT", "real": "REAL"},
    "postgres": {"text": 'TEXT COLLATE "C"', "real": "DOUBLE PRECISION"},
}
_CHUNK = 500  # digests per IN (...) query


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class BlobFence:
    """The two sides of the fence over one index database (see the module docstring).

    Its tables belong to online garbage collection and are created by
    :meth:`prepare` (``IF NOT EXISTS``), outside the index's versioned schema: an
    index that never collects online never has them.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def prepare(self) -> None:
        types = _TYPES[self.db.dialect]
        await self.db.write([Stmt(sql.format(**types)) for sql in _TABLES])

    # -- the PUT side ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self, digests: Collection[Digest]) -> AsyncIterator[None]:
        """Claims ``digests`` for the body of the ``async with``; raises
        :class:`ManifestBlobUnknown` if one of them is being swept."""
        names = sorted({str(d) for d in digests})
        if not names:
            yield
            return
        token = os.urandom(12).hex()
        now = time.time()
        await self.db.write([Stmt(
            "INSERT INTO gc_claims (digest, token, claimed_at) VALUES (?, ?, ?)",
            many=[(name, token, now) for name in names],
        )])
        try:
            for chunk in _chunks(names):
                rows = await self.db.fetch(
                    f"SELECT digest FROM gc_sweeping WHERE since > ? "
                    f"AND digest IN ({_marks(len(chunk))})",
                    (time.time() - SWEEP_TTL, *chunk),
                )
                if rows:
                    digest = str(rows[0][0])
                    raise ManifestBlobUnknown(
                        f"blob {digest} is being garbage-collected; push it again",
                        detail=digest,
                    )
            yield
        finally:
            await self.db.write([Stmt(
                "DELETE FROM gc_claims WHERE token = ? AND digest = ?",
                many=[(token, name) for name in names],
            )])

    # -- the collector's side -------------------------------------------------------

    async def reset(self) -> None:
        """At the start of a collection (under its lease): forget what dead runs left."""
        await self.db.write([
            Stmt("DELETE FROM gc_sweeping"),
            Stmt("DELETE FROM gc_claims WHERE claimed_at < ?", (time.time() - CLAIM_TTL,)),
        ])

    async def begin_sweep(self, digests: Collection[Digest]) -> tuple[set[Digest], float]:
        """Mark ``digests`` as being swept; returns those that no PUT claims and no
        indexed manifest references (safe to delete), and when the marks were made."""
        names = sorted({str(d) for d in digests})
        since = time.time()
        if not names:
            return set(), since
        await self.db.write([Stmt(
            "INSERT INTO gc_sweeping (digest, since) VALUES (?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET since = excluded.since",
            many=[(name, since) for name in names],
        )])
        busy: set[str] = set()
        for chunk in _chunks(names):
            marks = _marks(len(chunk))
            rows = await self.db.fetch(
                f"SELECT digest FROM gc_claims WHERE digest IN ({marks}) "
                f"UNION SELECT digest FROM manifest_refs WHERE digest IN ({marks}) "
                f"UNION SELECT digest FROM manifests WHERE digest IN ({marks})",
                (*chunk, *chunk, *chunk),
            )
            busy.update(str(r[0]) for r in rows)
        return {Digest.parse(n) for n in names if n not in busy}, since

    async def begin_manifest_sweep(
        self, repository: str, digests: Collection[Digest]
    ) -> set[Digest]:
        """As :meth:`begin_sweep`, for untagged manifests of ``repository``: those that
        no PUT claims, no tag names and no manifest outside ``digests`` lists as a child
        (an index pushed since the mark) are safe to unlink."""
        names = sorted({str(d) for d in digests})
        if not names:
            return set()
        await self.db.write([Stmt(
            "INSERT INTO gc_sweeping (digest, since) VALUES (?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET since = excluded.since",
            many=[(name, time.time()) for name in names],
        )])
        doomed = set(names)
        busy: set[str] = set()
        for chunk in _chunks(names):
            marks = _marks(len(chunk))
            rows = await self.db.fetch(
                f"SELECT digest, '' FROM gc_claims WHERE digest IN ({marks}) "
                f"UNION SELECT digest, '' FROM tags WHERE repository = ? AND digest IN ({marks}) "
                f"UNION SELECT digest, manifest FROM manifest_refs WHERE repository = ? "
                f"AND kind = 'manifest' AND digest IN ({marks})",
                (*chunk, repository, *chunk, repository, *chunk),
            )
            busy.update(str(d) for d, parent in rows if not parent or parent not in doomed)
        return {Digest.parse(n) for n in names if n not in busy}

    async def end_sweep(self, digests: Collection[Digest]) -> None:
        names = sorted({str(d) for d in digests})
        if names:
            await self.db.write([Stmt("DELETE FROM gc_sweeping WHERE digest = ?",
                                      many=[(n,) for n in names])])


class IndexLease:
    """Leases of the periodic jobs (``gc``, ``retention``) as rows of the index database,
    so that one instance of many (and ``dockyard garbage-collect --online`` beside them)
    works at a time. A row is taken when absent or expired (an atomic upsert), renewed
    and released only by its token. Expiry compares the hosts' clocks: keep them in sync.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tokens: dict[str, str] = {}
        self._prepared = False

    async def acquire(self, name: str, ttl: float) -> bool:
        if not self._prepared:  # the tables, once per process
            await BlobFence(self.db).prepare()
            self._prepared = True
        token = os.urandom(12).hex()
        now = time.time()
        await self.db.write([Stmt(
            "INSERT INTO gc_leases (name, token, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET token = excluded.token, expires = excluded.expires "
            "WHERE gc_leases.expires < ?",
            (name, token, now + ttl, now),
        )])
        rows = await self.db.fetch("SELECT token FROM gc_leases WHERE name = ?", (name,))
        if rows and rows[0][0] == token:
            self._tokens[name] = token
            return True
        return False

    async def renew(self, name: str, ttl: float) -> bool:
        token = self._tokens.get(name)
        if token is None:
            return False
        await self.db.write([Stmt("UPDATE gc_leases SET expires = ? WHERE name = ? AND token = ?",
                                  (time.time() + ttl, name, token))])
        rows = await self.db.fetch("SELECT token FROM gc_leases WHERE name = ?", (name,))
        return bool(rows) and rows[0][0] == token

    async def release(self, name: str) -> None:
        token = self._tokens.pop(name, None)
        if token is not None:
            await self.db.write([Stmt("DELETE FROM gc_leases WHERE name = ? AND token = ?",
                                      (name, token))])
