"""The index on a SQL database (SQLite or PostgreSQL): one implementation, two adapters.

Tables (:mod:`dockyard.index.schema`): ``repositories`` (name, catalog sort key,
has_tags, pushed_at), ``blobs`` (digest -> content-store size), ``layers``
(repository, digest: the ``_layers`` links), ``manifests`` (repository, digest,
media type, payload size, subject, artifact type, annotations, pushed_at,
last_pull), ``manifest_refs`` (repository, manifest, digest, kind ``blob``,
``manifest`` or ``signature``) and ``tags`` (repository, tag, digest, pushed_at).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from dockyard.digest import Digest
from dockyard.errors import NameUnknown
from dockyard.index.base import (
    ManifestRecord,
    ReferrerRecord,
    RepositoryState,
    RepositoryUsage,
    TagRecord,
)
from dockyard.index.db import Database, Row, Stmt
from dockyard.metadata import Page

__all__ = ["PULL_FLUSH_SECONDS", "SqlIndex", "catalog_sort_key"]

log = logging.getLogger("dockyard.index")

PULL_FLUSH_SECONDS = 5.0
"""How long pull times wait in memory before one batched write."""

_NO_LIMIT = 2**62

_CACHED_TAGS_MIN = 1000
"""Tag lists at least this long are kept in memory (per process) while unchanged."""
_CACHED_TAGS_MAX = 250_000
"""At most this many tags kept in all (some 20 MB), least recently used dropped first."""
_CATCH_UP_MAX = 1000
"""A kept list at most this many tag pushes behind reads only the tags written since."""

# A whole list with its version, in one statement (one snapshot): the names as one
# text, joined by newlines (which no tag holds), and their count: one row instead of a
# Python tuple per tag (3,000 tags: 0.4 against 0.85 ms). SQLite reads them in the
# primary key's order but promises none (an ORDER BY in a subquery cost 0.2 ms more):
# the caller sorts, one pass over a sorted list.
_WHOLE_TAGS = {
    dialect: "SELECT r.has_tags, r.tag_version, t.n, t.names FROM repositories r, "
             f"(SELECT count(*) AS n, {joined} AS names FROM tags WHERE repository = ?) t "
             "WHERE r.name = ?"
    for dialect, joined in (("sqlite", "group_concat(tag, char(10))"),
                            ("postgres", "string_agg(tag, chr(10) ORDER BY tag)"))
}
_ALL_TAG_ROWS = "SELECT tag FROM tags WHERE repository = ? ORDER BY tag"
# A page, with the repository's row: one row with a NULL tag when none follows.
_TAG_PAGE = (
    "SELECT r.has_tags, t.tag FROM repositories r LEFT JOIN tags t "
    "ON t.repository = r.name AND t.tag > ? WHERE r.name = ? ORDER BY t.tag LIMIT ?"
)
# The version and the tags pushed since a kept one, in one statement (one snapshot): a
# row per tag (or one with NULL), at most one per version in between, so past
# _CATCH_UP_MAX the list is read whole anyway.
_TAGS_SINCE = (
    "SELECT r.has_tags, r.tag_version, t.tag FROM repositories r LEFT JOIN tags t "
    "ON t.repository = r.name AND t.tag_version > ? AND t.tag_version <= r.tag_version "
    f"WHERE r.name = ? LIMIT {_CATCH_UP_MAX}"
)


def _can_catch_up(kept: int, version: int) -> bool:
    """Whether a list kept at ``kept`` reaches ``version`` by the tags written since:
    each tag write moves the version on by one, a removal to a random value."""
    return 0 < version - kept <= _CATCH_UP_MAX


def _tag_version(repository: str, known: list[Row]) -> int:
    """The ``tag_version`` of a repository's row; NAME_UNKNOWN if it has no tags."""
    if not known or not known[0][0]:
        raise NameUnknown(repository)
    return int(known[0][1])


def catalog_sort_key(name: str) -> str:
    """The catalog's order: ``/`` sorts before every character a name may hold."""
    return name.replace("/", "\x01")


def _upsert_repository(name: str, has_tags: bool, now: float | None) -> Stmt:
    """The repository's row; with ``has_tags`` (a tag is written in the same
    transaction) its ``tag_version`` goes up by one in this one statement, which returns
    it: a process that knows the list at the version before knows the list after."""
    return Stmt(
        "INSERT INTO repositories (name, sort_key, has_tags, pushed_at, tag_version) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "has_tags = CASE WHEN excluded.has_tags = 1 THEN 1 ELSE repositories.has_tags END, "
        "pushed_at = COALESCE(excluded.pushed_at, repositories.pushed_at), "
        "tag_version = CASE WHEN excluded.has_tags = 1 THEN repositories.tag_version + 1 "
        "ELSE repositories.tag_version END" + (" RETURNING tag_version" if has_tags else ""),
        (name, catalog_sort_key(name), int(has_tags), now, _token()),
        returning=has_tags,
    )


def _token() -> int:
    """A fresh ``tag_version``: random, so a deleted and re-created repository never
    meets a token it had before (nor does a list a deletion changed: see
    :func:`_tags_changed`). From the process's generator (seeded from the system's
    at start and again in each forked worker), not ``secrets``: a ``getrandom`` call on
    the event loop gives the GIL away on every tag push, and nothing here is secret."""
    return random.getrandbits(62) + 1


def _tags_changed(name: str) -> Stmt:
    return Stmt("UPDATE repositories SET tag_version = ? WHERE name = ?", (_token(), name))


_UPSERT_BLOB = (
    "INSERT INTO blobs (digest, size) VALUES (?, ?) "
    "ON CONFLICT (digest) DO UPDATE SET size = excluded.size"
)
_INSERT_LAYER = (
    "INSERT INTO layers (repository, digest) VALUES (?, ?) ON CONFLICT DO NOTHING"
)
_UPSERT_MANIFEST = (
    "INSERT INTO manifests (repository, digest, media_type, size, subject, artifact_type, "
    "annotations, pushed_at, last_pull) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (repository, digest) DO UPDATE SET media_type = excluded.media_type, "
    "size = excluded.size, subject = excluded.subject, artifact_type = excluded.artifact_type, "
    "annotations = excluded.annotations, "
    "pushed_at = COALESCE(excluded.pushed_at, manifests.pushed_at), "
    "last_pull = COALESCE(excluded.last_pull, manifests.last_pull)"
)
_INSERT_REF = (
    "INSERT INTO manifest_refs (repository, manifest, digest, kind) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
# The row takes the repository's tag_version, which the repository's upsert before it
# in the same transaction has just moved on.
_UPSERT_TAG = (
    "INSERT INTO tags (repository, tag, digest, pushed_at, tag_version) VALUES (?, ?, ?, ?, "
    "COALESCE((SELECT tag_version FROM repositories WHERE name = ?), 0)) "
    "ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, "
    "pushed_at = COALESCE(excluded.pushed_at, tags.pushed_at), "
    "tag_version = excluded.tag_version"
)
_REPOSITORY_TABLES = ("layers", "manifests", "manifest_refs", "tags")


def _manifest_stmts(repository: str, record: ManifestRecord) -> list[Stmt]:
    refs = [(repository, str(record.digest), str(d), "blob") for d in record.blobs]
    refs += [(repository, str(record.digest), str(d), "manifest") for d in record.children]
    refs += [(repository, str(record.digest), str(d), "signature") for d in record.signatures]
    annotations = json.dumps(dict(record.annotations)) if record.annotations else None
    stmts = [
        Stmt(_UPSERT_BLOB, (str(record.digest), record.size)),
        Stmt(_UPSERT_MANIFEST, (
            repository, str(record.digest), record.media_type, record.size,
            str(record.subject) if record.subject else None, record.artifact_type,
            annotations, record.pushed_at, record.last_pull,
        )),
        Stmt("DELETE FROM manifest_refs WHERE repository = ? AND manifest = ?",
             (repository, str(record.digest))),
    ]
    if refs:
        stmts.append(Stmt(_INSERT_REF, many=refs))
    return stmts


def _annotations(raw: Any) -> dict[str, str] | None:
    if not raw:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


@dataclasses.dataclass(slots=True)
class _TagList:
    """A repository's whole tag list as this process last read or wrote it."""

    version: int
    """Its ``tag_version``."""
    tags: list[str]
    """Sorted; never changed in place (pages of it are served as they are)."""
    seen: object | None
    """:meth:`Database.state` when the version was last known current (None: ask)."""
    since: int | None = None
    """The version this list was made from by inserting :attr:`added` (None: read whole)."""
    added: tuple[str, ...] = ()


class SqlIndex:
    """:class:`dockyard.index.base.Index` on a :class:`~dockyard.index.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pulls: dict[tuple[str, str], float] = {}
        self._flusher: asyncio.Task[None] | None = None
        # The large tag lists, least recently used first.
        self._tag_lists: OrderedDict[str, _TagList] = OrderedDict()

    @property
    def where(self) -> str:
        return f"{self.db.dialect} at {self.db.where}"

    # -- lifecycle -------------------------------------------------------------------

    async def migrate(self) -> int:
        return await self.db.migrate()

    async def is_empty(self) -> bool:
        return not await self.db.fetch("SELECT name FROM repositories LIMIT 1")

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._flush_pulls()
        await self.db.aclose()

    # -- listings (dockyard.metadata.MetadataIndex) --------------------------------------

    async def repositories(self, n: int, last: str) -> Page:
        rows = await self.db.fetch(
            "SELECT name FROM repositories WHERE sort_key > ? ORDER BY sort_key LIMIT ?",
            (catalog_sort_key(last), n + 1),
        )
        names = [r[0] for r in rows]
        return Page(names[:n], len(names) > n)

    async def tags(self, repository: str, n: int | None, last: str) -> Page:
        whole = n is None and not last
        cached = self._tag_lists.get(repository)
        # Read before the version: a commit after it changes the state again.
        seen = self.db.state()
        if cached is not None and (seen is None or cached.seen != seen):
            cached = await self._current(repository, cached, seen)
        if cached is None:
            if whole:
                return await self._whole_tags(repository, seen)
            return await self._tag_page(repository, n, last)
        self._tag_lists.move_to_end(repository)
        if whole:
            # The kept list itself, not a copy (100,000 tags: a copy cost more than the
            # rest of the request); pages are read, never changed.
            since = None if cached.since is None else str(cached.since)
            return Page(cached.tags, False, str(cached.version), since, cached.added)
        return _page_of(cached.tags, n, last)

    async def _current(
        self, repository: str, cached: _TagList, seen: object | None
    ) -> _TagList | None:
        """``cached`` as it is now: unchanged, caught up, or None when only the whole
        list will do.

        The version and the tags whose rows carry a version in between are read in one
        statement: with tag pushes only (see :func:`_can_catch_up`) those are the list's
        new names (or old ones moved to another manifest), so the list is exactly the
        one at the version read (a removal since moved the version away: the next
        listing reads the whole list).
        """
        since = await self.db.fetch(_TAGS_SINCE, (cached.version, repository))
        version = _tag_version(repository, since)
        if cached.version == version:
            cached.seen = seen
            return cached
        if not _can_catch_up(cached.version, version):
            # Dropped, or a list now too short to keep would cost this statement too on
            # every listing (pop: a concurrent listing may have dropped it already).
            self._tag_lists.pop(repository, None)
            return None
        new = (tag for (_, _, tag) in since if tag is not None)
        tags, added = _with_tags(cached.tags, new)
        caught_up = _TagList(version, tags, seen, cached.version, added)
        self._tag_lists[repository] = caught_up
        return caught_up

    async def _tag_page(self, repository: str, n: int | None, last: str) -> Page:
        """The tags after ``last`` (at most ``n``), read with the repository's row in one
        statement: NAME_UNKNOWN without a trip of its own."""
        limit = _NO_LIMIT if n is None else n + 1
        rows = await self.db.fetch(_TAG_PAGE, (last, repository, limit))
        if not rows or not rows[0][0]:
            raise NameUnknown(repository)
        tags = [tag for (_, tag) in rows if tag is not None]
        if n is None:
            return Page(tags, False)
        return Page(tags[:n], len(tags) > n)

    async def _whole_tags(self, repository: str, seen: object | None) -> Page:
        """The whole list and its version, read in one statement; kept when large."""
        rows = await self.db.fetch(_WHOLE_TAGS[self.db.dialect], (repository, repository))
        version = _tag_version(repository, rows)
        count, joined = rows[0][2], rows[0][3]
        tags = joined.split("\n") if joined else []
        if len(tags) != count:  # a name with a newline (none is a valid tag): ask for rows
            tags = [r[0] for r in await self.db.fetch(_ALL_TAG_ROWS, (repository,))]
        tags.sort()  # bytewise, as the columns' collation and distribution order them
        if _CACHED_TAGS_MIN <= len(tags) <= _CACHED_TAGS_MAX:
            self._tag_lists[repository] = _TagList(version, tags, seen)
            while sum(len(t.tags) for t in self._tag_lists.values()) > _CACHED_TAGS_MAX:
                self._tag_lists.popitem(last=False)
        return Page(tags, False, str(version))

    async def referrers(self, repository: str, subject: Digest) -> list[Digest]:
        return [r.digest for r in await self.referrer_records(repository, subject, None)]

    # -- write hooks ----------------------------------------------------------------------

    async def manifest_put(self, repository: str, record: ManifestRecord, tag: str | None) -> None:
        now = record.pushed_at if record.pushed_at is not None else time.time()
        if record.pushed_at is None:
            record = dataclasses.replace(record, pushed_at=now)
        # With a tag, the repository's upsert also changes its tag_version.
        stmts = [_upsert_repository(repository, tag is not None, now),
                 *_manifest_stmts(repository, record)]
        if tag is not None:
            stmts.append(Stmt(_UPSERT_TAG, (repository, tag, str(record.digest), now,
                                            repository)))
        written = await self.db.write(stmts)
        if tag is not None:
            self._tag_written(repository, tag, int(written.rows[0][0]), written.state)

    def _tag_written(self, repository: str, tag: str, version: int, state: object | None) -> None:
        """Bring a kept tag list up to the version this process's tag write made, when
        the list was at the version just before it (so that write was the only change).
        A list further behind stays as it is, for the next listing to catch up (with
        ``--workers N`` the other workers' pushes come between this one's); one that
        cannot catch up is dropped."""
        cached = self._tag_lists.get(repository)
        if cached is None:
            return
        if cached.version == version - 1:
            tags, added = _with_tags(cached.tags, (tag,))
            self._tag_lists[repository] = _TagList(version, tags, state, cached.version, added)
        elif not _can_catch_up(cached.version, version):
            del self._tag_lists[repository]

    async def tag_deleted(self, repository: str, tag: str) -> None:
        await self.db.write([
            Stmt("DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag)),
            _tags_changed(repository),
        ])

    async def manifest_deleted(self, repository: str, digest: Digest) -> None:
        key = (repository, str(digest))
        await self.db.write([
            Stmt("DELETE FROM manifests WHERE repository = ? AND digest = ?", key),
            Stmt("DELETE FROM manifest_refs WHERE repository = ? AND manifest = ?", key),
            Stmt("DELETE FROM tags WHERE repository = ? AND digest = ?", key),
            _tags_changed(repository),
        ])

    async def layers_linked(self, repository: str, digests: Iterable[Digest], size: int) -> None:
        unique = list(dict.fromkeys(str(d) for d in digests))
        await self.db.write([
            _upsert_repository(repository, False, None),
            Stmt(_UPSERT_BLOB, many=[(d, size) for d in unique]),
            Stmt(_INSERT_LAYER, many=[(repository, d) for d in unique]),
        ])

    async def layer_unlinked(self, repository: str, digest: Digest) -> None:
        await self.db.write([
            Stmt("DELETE FROM layers WHERE repository = ? AND digest = ?",
                 (repository, str(digest)))
        ])

    async def repository_deleted(self, repository: str) -> None:
        await self.db.write(_delete_repository(repository))

    async def blobs_deleted(self, digests: Iterable[Digest]) -> None:
        rows = [(str(d),) for d in digests]
        if rows:
            await self.db.write([Stmt("DELETE FROM blobs WHERE digest = ?", many=rows)])

    def record_pull(self, repository: str, digest: Digest) -> None:
        self._pulls[(repository, str(digest))] = time.time()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_later(), name="index-pull-times"
            )

    async def _flush_later(self) -> None:
        await asyncio.sleep(PULL_FLUSH_SECONDS)
        try:
            await self._flush_pulls()
        except Exception as exc:  # a lost pull time is no reason to crash anything
            log.warning("index: recording pull times failed: %s", exc)

    async def _flush_pulls(self) -> None:
        pulls, self._pulls = self._pulls, {}
        if pulls:
            await self.db.write([Stmt(
                "UPDATE manifests SET last_pull = ? WHERE repository = ? AND digest = ?",
                many=[(t, repo, digest) for (repo, digest), t in pulls.items()],
            )])

    # -- queries ----------------------------------------------------------------------------

    async def referrer_records(
        self, repository: str, subject: Digest, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        sql = ("SELECT digest, media_type, size, artifact_type, annotations FROM manifests "
               "WHERE repository = ? AND subject = ?")
        params: list[object] = [repository, str(subject)]
        if artifact_type is not None:
            sql += " AND artifact_type = ?"
            params.append(artifact_type)
        rows = await self.db.fetch(sql + " ORDER BY digest", params)
        return [
            ReferrerRecord(Digest.parse(r[0]), r[1], int(r[2]), r[3], _annotations(r[4]))
            for r in rows
        ]

    async def tag_records(self, repository: str) -> list[TagRecord]:
        rows = await self.db.fetch(
            "SELECT tag, digest, pushed_at FROM tags WHERE repository = ? ORDER BY tag",
            (repository,),
        )
        return [TagRecord(r[0], Digest.parse(r[1]), r[2]) for r in rows]

    async def manifest_records(self, repository: str) -> list[ManifestRecord]:
        rows = await self.db.fetch(
            "SELECT digest, media_type, size, subject, artifact_type, annotations, pushed_at, "
            "last_pull FROM manifests WHERE repository = ? ORDER BY digest",
            (repository,),
        )
        refs = await self.db.fetch(
            "SELECT manifest, digest, kind FROM manifest_refs WHERE repository = ? "
            "ORDER BY manifest, kind, digest",
            (repository,),
        )
        found: dict[str, dict[str, list[Digest]]] = {"blob": {}, "manifest": {}, "signature": {}}
        for manifest, digest, kind in refs:
            found.setdefault(kind, {}).setdefault(manifest, []).append(Digest.parse(digest))
        blobs, children, signatures = found["blob"], found["manifest"], found["signature"]
        return [
            ManifestRecord(
                digest=Digest.parse(r[0]), media_type=r[1], size=int(r[2]),
                blobs=tuple(blobs.get(r[0], ())), children=tuple(children.get(r[0], ())),
                subject=Digest.parse(r[3]) if r[3] else None, artifact_type=r[4],
                annotations=_annotations(r[5]), signatures=tuple(signatures.get(r[0], ())),
                pushed_at=r[6], last_pull=r[7],
            )
            for r in rows
        ]

    async def referenced_blobs(self) -> set[Digest]:
        rows = await self.db.fetch(
            "SELECT digest FROM layers UNION SELECT digest FROM manifests "
            "UNION SELECT digest FROM manifest_refs WHERE kind IN ('blob', 'signature')"
        )
        return {Digest.parse(r[0]) for r in rows}

    async def usage(self, repository: str) -> RepositoryUsage | None:
        known = await self.db.fetch(
            "SELECT pushed_at FROM repositories WHERE name = ?", (repository,)
        )
        if not known:
            return None
        return await self._usage(repository, known[0][0])

    async def _usage(self, repository: str, pushed_at: float | None) -> RepositoryUsage:
        # Everything it references: layer links and manifest payloads, each once.
        rows = await self.db.fetch(
            "WITH mine AS (SELECT digest FROM layers WHERE repository = ? "
            "UNION SELECT digest FROM manifests WHERE repository = ?) "
            "SELECT COUNT(*), COALESCE(SUM(b.size), 0), COALESCE(SUM(CASE WHEN "
            "NOT EXISTS (SELECT 1 FROM layers o WHERE o.digest = mine.digest "
            "AND o.repository <> ?) AND NOT EXISTS (SELECT 1 FROM manifests o "
            "WHERE o.digest = mine.digest AND o.repository <> ?) "
            "THEN b.size ELSE 0 END), 0) "
            "FROM mine LEFT JOIN blobs b ON b.digest = mine.digest",
            (repository, repository, repository, repository),
        )
        counts = await self.db.fetch(
            "SELECT (SELECT COUNT(*) FROM tags WHERE repository = ?), "
            "(SELECT COUNT(*) FROM manifests WHERE repository = ?)",
            (repository, repository),
        )
        blobs, size, exclusive = rows[0]
        tags, manifests = counts[0]
        return RepositoryUsage(
            name=repository, tags=int(tags), manifests=int(manifests), blobs=int(blobs),
            size=int(size), exclusive_size=int(exclusive), pushed_at=pushed_at,
        )

    async def usages(self, n: int, last: str) -> tuple[list[RepositoryUsage], bool]:
        rows = await self.db.fetch(
            "SELECT name, pushed_at FROM repositories WHERE sort_key > ? "
            "ORDER BY sort_key LIMIT ?",
            (catalog_sort_key(last), n + 1),
        )
        found = [await self._usage(name, pushed) for name, pushed in rows[:n]]
        return found, len(rows) > n

    # -- maintenance ----------------------------------------------------------------------

    async def all_repositories(self) -> list[str]:
        rows = await self.db.fetch("SELECT name FROM repositories ORDER BY sort_key")
        return [r[0] for r in rows]

    async def repository_state(self, repository: str) -> RepositoryState | None:
        known = await self.db.fetch(
            "SELECT has_tags FROM repositories WHERE name = ?", (repository,)
        )
        if not known:
            return None
        state = RepositoryState(repository, has_tags=bool(known[0][0]))
        state.tags = {t.tag: t.digest for t in await self.tag_records(repository)}
        state.manifests = {m.digest: m for m in await self.manifest_records(repository)}
        layers = await self.db.fetch(
            "SELECT digest FROM layers WHERE repository = ?", (repository,)
        )
        state.layers = {Digest.parse(r[0]) for r in layers}
        sizes: list[Row] = await self.db.fetch(
            "SELECT b.digest, b.size FROM blobs b WHERE b.digest IN "
            "(SELECT digest FROM layers WHERE repository = ? "
            "UNION SELECT digest FROM manifests WHERE repository = ?)",
            (repository, repository),
        )
        state.sizes = {Digest.parse(d): int(s) for d, s in sizes}
        return state

    async def replace_repository(self, state: RepositoryState) -> None:
        name = state.name
        stmts = [*_delete_repository(name), _upsert_repository(name, state.has_tags, None)]
        # A rebuild keeps the times it cannot read from storage (push, pull).
        stmts[-1] = Stmt(
            "INSERT INTO repositories (name, sort_key, has_tags, pushed_at, tag_version) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, catalog_sort_key(name), int(state.has_tags),
             max((m.pushed_at or 0.0 for m in state.manifests.values()), default=0.0) or None,
             _token()),
        )
        if state.sizes:
            stmts.append(Stmt(_UPSERT_BLOB, many=[(str(d), s) for d, s in state.sizes.items()]))
        if state.layers:
            stmts.append(Stmt(_INSERT_LAYER, many=[(name, str(d)) for d in state.layers]))
        for record in state.manifests.values():
            stmts.extend(_manifest_stmts(name, record)[1:])
        if state.tags:
            stmts.append(Stmt(_UPSERT_TAG, many=[
                (name, tag, str(d), None, name) for tag, d in state.tags.items()
            ]))
        await self.db.write(stmts)


def _with_tags(tags: list[str], new: Iterable[str]) -> tuple[list[str], tuple[str, ...]]:
    """The sorted ``tags`` with the ``new`` ones (``tags`` itself if it holds them all,
    else a new list made in one merge: kept lists are never changed in place), and
    the names it did not hold, sorted."""
    added = sorted({tag for tag in new if not _holds(tags, tag)})
    if not added:
        return tags, ()
    merged = tags + added
    merged.sort()  # two sorted runs: one merge pass in C
    return merged, tuple(added)


def _holds(tags: list[str], tag: str) -> bool:
    at = bisect.bisect_left(tags, tag)
    return at < len(tags) and tags[at] == tag


def _page_of(tags: list[str], n: int | None, last: str) -> Page:
    """The page of the sorted ``tags`` after ``last``, at most ``n``."""
    start = bisect.bisect_right(tags, last) if last else 0
    if n is None:
        return Page(tags[start:], False)
    return Page(tags[start : start + n], len(tags) > start + n)


def _delete_repository(name: str) -> list[Stmt]:
    stmts = [Stmt(f"DELETE FROM {table} WHERE repository = ?", (name,))
             for table in _REPOSITORY_TABLES]
    stmts.append(Stmt("DELETE FROM repositories WHERE name = ?", (name,)))
    return stmts

