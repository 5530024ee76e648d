"""The SQL index on SQLite (a file and in memory): hooks, listings, usage, state."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dockyard.digest import Digest
from dockyard.errors import NameUnknown
from dockyard.index import SqlIndex, schema
from dockyard.index.base import ManifestRecord
from dockyard.index.db import Row, Stmt
from dockyard.index.records import manifest_record
from dockyard.index.sqlite import MEMORY, SqliteDatabase
from dockyard.metadata import Page


def _digest(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


def _manifest(config: Digest, layers: list[Digest], subject: Digest | None = None) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": str(config), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": str(d),
                    "size": 10} for d in layers],
    }
    if subject is not None:
        body["artifactType"] = "application/vnd.example"
        body["subject"] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": str(subject), "size": 1}
    return json.dumps(body).encode()


def _record() -> ManifestRecord:
    payload = _manifest(_digest(b"{}"), [])
    return manifest_record(_digest(payload), payload)


async def _seed_tags(index: SqlIndex, repository: str, count: int) -> list[str]:
    """``count`` tags pushed through ``index``; their names, sorted."""
    record = _record()
    tags = [f"t{i:05d}" for i in range(count)]
    for tag in tags:
        await index.manifest_put(repository, record, tag)
    return tags


def _two_processes(tmp_path: Path) -> tuple[SqlIndex, SqlIndex]:
    """Two indexes on one file, as two workers (or a worker and a command) have it."""
    path = str(tmp_path / "index.db")
    return SqlIndex(SqliteDatabase(path)), SqlIndex(SqliteDatabase(path))


async def _seeded_pair(tmp_path: Path, count: int = 1200) -> tuple[SqlIndex, SqlIndex]:
    """Two processes on one file (migrated), ``count`` tags of ``big`` pushed through
    the second."""
    one, two = _two_processes(tmp_path)
    await one.migrate()
    await _seed_tags(two, "big", count)
    return one, two


def _count_queries(index: SqlIndex) -> list[str]:
    """The SQL of every query ``index`` reads with from now on (one trip to the
    database each)."""
    queries: list[str] = []
    real = index.db.fetch

    async def counting(sql: str, params: Any = ()) -> list[Row]:
        queries.append(sql)
        return await real(sql, params)

    index.db.fetch = counting  # type: ignore[method-assign]
    return queries


@pytest.fixture(params=["file", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> SqlIndex:
    path = str(tmp_path / "index.db") if request.param == "file" else MEMORY
    return SqlIndex(SqliteDatabase(path))


def test_hooks_listings_and_usage(index: SqlIndex) -> None:
    asyncio.run(exercise(index))


async def exercise(index: SqlIndex) -> None:
    """Every hook and query once, on an empty database (also run on PostgreSQL)."""
    assert await index.migrate() == len(schema.MIGRATIONS)
    assert await index.migrate() == len(schema.MIGRATIONS)  # idempotent
    assert await index.is_empty()
    config, layer, shared = _digest(b"{}"), _digest(b"layer"), _digest(b"shared")
    await index.layers_linked("a/b", [config], 2)
    await index.layers_linked("a/b", [layer], 100)
    await index.layers_linked("a/b", [shared], 1000)
    await index.layers_linked("a-b", [shared], 1000)
    payload = _manifest(config, [layer, shared])
    digest = _digest(payload)
    await index.manifest_put("a/b", manifest_record(digest, payload), "v1")
    note = _manifest(config, [], subject=digest)
    await index.manifest_put("a/b", manifest_record(_digest(note), note), None)
    for name in ("a", "a/c", "b"):
        await index.layers_linked(name, [config], 2)
    # "/" sorts before "-": distribution's catalog order.
    page = await index.repositories(10, "")
    assert page.entries == ["a", "a/b", "a/c", "a-b", "b"] and not page.more
    page = await index.repositories(2, "a")
    assert page.entries == ["a/b", "a/c"] and page.more
    assert (await index.tags("a/b", None, "")).entries == ["v1"]
    with pytest.raises(NameUnknown):
        await index.tags("a-b", None, "")
    refs = await index.referrer_records("a/b", digest, None)
    assert [r.digest for r in refs] == [_digest(note)]
    assert refs[0].artifact_type == "application/vnd.example"
    assert await index.referrer_records("a/b", digest, "other") == []
    usage = await index.usage("a/b")
    assert usage is not None
    assert (usage.tags, usage.manifests, usage.blobs) == (1, 2, 5)
    assert usage.size == 2 + 100 + 1000 + len(payload) + len(note)
    # config is in a, a/c and b too; shared in a-b.
    assert usage.exclusive_size == 100 + len(payload) + len(note)
    index.record_pull("a/b", digest)
    await index.manifest_deleted("a/b", digest)
    assert (await index.tags("a/b", None, "")).entries == []
    state = await index.repository_state("a/b")
    assert state is not None and list(state.manifests) == [_digest(note)]
    await index.repository_deleted("a/b")
    assert await index.usage("a/b") is None
    assert "a/b" not in (await index.repositories(10, "")).entries
    await index.aclose()


def test_a_new_migration_upgrades_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema change is a migration appended to the list: applied once, at start,
    to an index that keeps its rows (never a rebuild by hand)."""
    path = str(tmp_path / "index.db")
    digest = _digest(b"x")

    async def first() -> None:
        index = SqlIndex(SqliteDatabase(path))
        assert await index.migrate() == 1
        await index.db.write([Stmt(
            "INSERT INTO repositories (name, sort_key, has_tags) VALUES ('kept', 'kept', 1)"
        ), Stmt("INSERT INTO tags (repository, tag, digest) VALUES ('kept', 'v1', ?)",
                (str(digest),))])
        await index.aclose()

    with monkeypatch.context() as patch:
        patch.setattr("dockyard.index.sqlite.MIGRATIONS", schema.MIGRATIONS[:1])
        asyncio.run(first())

    async def second() -> None:
        index = SqlIndex(SqliteDatabase(path))
        assert await index.migrate() == len(schema.MIGRATIONS)
        assert await index.migrate() == len(schema.MIGRATIONS)
        assert (await index.tags("kept", None, "")).entries == ["v1"]
        rows = await index.db.fetch("SELECT version FROM schema_version ORDER BY version")
        assert rows == [(v,) for v in range(1, len(schema.MIGRATIONS) + 1)]
        await index.aclose()

    asyncio.run(second())


def test_a_large_tag_list_kept_in_memory_follows_other_processes(tmp_path: Path) -> None:
    """Another process's tag write (another worker, an offline command) is seen at once."""
    record = _record()

    async def run() -> None:
        one, two = _two_processes(tmp_path)
        await one.migrate()
        tags = await _seed_tags(two, "big", 1500)
        assert (await one.tags("big", None, "")).entries == tags  # now in memory
        page = await one.tags("big", 2, "t00100")
        assert page.entries == ["t00101", "t00102"] and page.more
        await two.manifest_put("big", record, "zzz")
        assert (await one.tags("big", None, "")).entries == [*tags, "zzz"]
        await two.tag_deleted("big", "t00000")
        assert (await one.tags("big", 1, "")).entries == ["t00001"]
        await two.repository_deleted("big")
        with pytest.raises(NameUnknown):
            await one.tags("big", None, "")
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_concurrent_listings_of_a_list_that_cannot_catch_up_both_read_it_whole(
    tmp_path: Path,
) -> None:
    """Two listings at once find the kept list unable to catch up (another process
    removed a tag): each drops it and reads the list, neither fails (the second drop
    used to raise KeyError, a 500)."""

    async def run() -> None:
        one, two = _two_processes(tmp_path)
        await one.migrate()
        tags = await _seed_tags(two, "big", 1500)
        assert (await one.tags("big", None, "")).entries == tags  # now kept
        await two.tag_deleted("big", "t00000")
        pages = await asyncio.gather(*(one.tags("big", None, "") for _ in range(3)))
        assert [page.entries for page in pages] == [tags[1:]] * 3
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_a_whole_tag_list_carries_a_version_that_every_tag_write_changes(
    tmp_path: Path,
) -> None:
    """The API reuses a whole list's encoded body while this version holds."""
    record = _record()

    async def run() -> None:
        one, two = await _seeded_pair(tmp_path)
        first = await one.tags("big", None, "")
        again = await one.tags("big", None, "")  # from memory
        assert first.version is not None and again.version == first.version
        assert (await one.tags("big", 10, "")).version is None  # a page: no body reuse
        seen = {first.version}
        for write in (two.manifest_put("big", record, "zzz"), two.tag_deleted("big", "zzz"),
                      two.manifest_deleted("big", record.digest)):
            await write
            version = (await one.tags("big", None, "")).version
            assert version not in seen
            seen.add(version)
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_concurrent_writes_share_a_transaction_and_fail_alone(tmp_path: Path) -> None:
    """Writes queued while one commits go into the next transaction together (group
    commit), each in its own savepoint: a failing one leaves nothing and fails alone,
    the others hold, and a write that returned is visible to the next read."""
    db = SqliteDatabase(str(tmp_path / "index.db"))
    commits: list[int] = []

    async def run() -> None:
        await db.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY)")])
        real = db._run

        async def counting(work: Any) -> Any:
            commits.append(1)
            return await real(work)

        db._run = counting  # type: ignore[method-assign]  # counts the thread hops

        async def put(k: str) -> None:
            await db.write([Stmt("INSERT INTO t (k) VALUES (?)", (k,)),
                            Stmt("INSERT INTO t (k) VALUES (?)", (k + "-2",))])
            assert await db.fetch("SELECT k FROM t WHERE k = ?", (k,)) == [(k,)]

        async def bad() -> None:
            # The second statement collides: the first one of this write is undone too.
            await db.write([Stmt("INSERT INTO t (k) VALUES ('bad')"),
                            Stmt("INSERT INTO t (k) VALUES ('k00')")])

        results = await asyncio.gather(
            *(put(f"k{i:02d}") for i in range(10)), bad(), *(put(f"k{i:02d}") for i in
                                                             range(10, 20)),
            return_exceptions=True)
        failures = [r for r in results if r is not None]
        assert len(failures) == 1 and "UNIQUE" in str(failures[0])
        db._run = real  # type: ignore[method-assign]
        rows = await db.fetch("SELECT k FROM t ORDER BY k")
        assert [r[0] for r in rows] == sorted(
            [f"k{i:02d}" for i in range(20)] + [f"k{i:02d}-2" for i in range(20)])
        await db.aclose()

    asyncio.run(run())
    # 21 writes (and 20 reads) in far fewer thread hops than one transaction each.
    assert len(commits) < 30


def test_writes_that_hold_share_a_transaction_without_savepoints(tmp_path: Path) -> None:
    """A batch in which no write fails runs without a savepoint per write (each would
    copy every page its write changes to SQLite's sub-journal, spilled to a temporary
    file past 64 KiB); one failure runs the batch again with them (the test above)."""
    db = SqliteDatabase(str(tmp_path / "index.db"))
    executed: list[str] = []

    async def run() -> None:
        await db.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY)")])
        await db._run(lambda conn: conn.set_trace_callback(executed.append))
        await asyncio.gather(*(db.write([Stmt("INSERT INTO t (k) VALUES (?)", (f"k{i}",))])
                               for i in range(10)))
        await db._run(lambda conn: conn.set_trace_callback(None))
        assert len(await db.fetch("SELECT k FROM t")) == 10
        await db.aclose()

    asyncio.run(run())
    assert executed.count("COMMIT") < 10  # shared transactions
    assert not [sql for sql in executed if "SAVEPOINT" in sql]


def test_a_lone_failing_write_leaves_nothing(tmp_path: Path) -> None:
    """A write committed alone (no savepoint) is all-or-nothing too: its first statement
    is undone when the second fails, and the next write works."""
    db = SqliteDatabase(str(tmp_path / "index.db"))

    async def run() -> None:
        await db.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY)"),
                        Stmt("INSERT INTO t (k) VALUES ('a')")])
        with pytest.raises(sqlite3.IntegrityError):
            await db.write([Stmt("INSERT INTO t (k) VALUES ('b')"),
                            Stmt("INSERT INTO t (k) VALUES ('a')")])
        await db.write([Stmt("INSERT INTO t (k) VALUES ('c')")])
        assert await db.fetch("SELECT k FROM t ORDER BY k") == [("a",), ("c",)]
        await db.aclose()

    asyncio.run(run())


def test_writers_of_one_file_take_turns_on_the_writer_lock(tmp_path: Path) -> None:
    """Two connections to one file (as two worker processes have) queue on the flock of
    ``<index>.writer`` around each transaction, so neither waits in SQLite's polling
    busy handler; every write of both lands."""
    path = str(tmp_path / "index.db")
    first, second = SqliteDatabase(path), SqliteDatabase(path)

    async def run() -> list[Row]:
        await first.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY)")])

        async def put(db: SqliteDatabase, k: str) -> None:
            await db.write([Stmt("INSERT INTO t (k) VALUES (?)", (k,))])

        await asyncio.gather(*(put(first if i % 2 else second, f"k{i:03d}") for i in range(200)))
        rows = await second.fetch("SELECT COUNT(*) FROM t")
        await first.aclose()
        await second.aclose()
        return rows

    assert asyncio.run(run()) == [(200,)]
    assert (tmp_path / "index.db.writer").exists()


def test_the_state_changes_at_every_commit_of_any_process(tmp_path: Path) -> None:
    """:meth:`SqliteDatabase.state` (the WAL index header) stays while nobody commits and
    changes at every commit, this process's or another's; a lone write returns the state
    it left and its ``RETURNING`` rows."""
    path = str(tmp_path / "index.db")

    async def run() -> None:
        one, two = SqliteDatabase(path), SqliteDatabase(path)
        assert one.state() is None  # not open yet: unknown
        await one.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)")])
        written = await one.write([Stmt("INSERT INTO t VALUES ('a', 1) RETURNING n + 1",
                                        returning=True)])
        assert written.rows == [(2,)]
        state = one.state()
        assert state is not None and written.state == state
        assert await one.fetch("SELECT k FROM t") == [("a",)]
        assert await two.fetch("SELECT k FROM t") == [("a",)]
        assert one.state() == state  # reads change nothing
        await two.write([Stmt("UPDATE t SET n = 5")])
        assert one.state() != state
        state = one.state()
        await one.write([Stmt("UPDATE t SET n = 6")])
        assert one.state() != state
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_memory_database_state_counts_its_commits() -> None:
    async def run() -> None:
        db = SqliteDatabase(MEMORY)
        await db.write([Stmt("CREATE TABLE t (k TEXT)")])
        before = db.state()
        written = await db.write([Stmt("INSERT INTO t VALUES ('a')")])
        assert before is not None and written.state == db.state() != before
        await db.fetch("SELECT k FROM t")
        assert db.state() == written.state
        await db.aclose()

    asyncio.run(run())


def test_concurrent_writes_learn_no_state(tmp_path: Path) -> None:
    """The state after a shared transaction says nothing about one write's effect."""
    db = SqliteDatabase(str(tmp_path / "index.db"))

    async def run() -> None:
        await db.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY)")])
        results = await asyncio.gather(
            *(db.write([Stmt("INSERT INTO t VALUES (?)", (f"k{i}",))]) for i in range(8)))
        shared = [w for w in results if w.state is None]
        assert shared, "the eight writes should have shared transactions"
        await db.aclose()

    asyncio.run(run())


def test_a_tag_written_here_updates_the_kept_list_without_a_query(tmp_path: Path) -> None:
    """A tag pushed through this process brings its kept list up to date, so the next
    listing asks the database nothing; anyone else's commit makes it ask again."""
    record = _record()

    async def run() -> None:
        one, two = _two_processes(tmp_path)
        await one.migrate()
        tags = await _seed_tags(two, "big", 1200)
        first = await one.tags("big", None, "")
        assert first.entries == tags
        queries = _count_queries(one)
        assert (await one.tags("big", None, "")).entries is first.entries
        assert queries == []  # nothing committed since: no query at all
        await one.manifest_put("big", record, "t00500x")
        await one.manifest_put("big", record, "t00001")  # moved, not added
        page = await one.tags("big", None, "")
        expected = sorted([*tags, "t00500x"])
        assert page.entries == expected and queries == []
        assert page.version != first.version
        assert (await one.tags("big", 2, "t00500")).entries == ["t00500x", "t00501"]
        assert queries == []
        await two.manifest_put("big", record, "zzz")  # another process: asked again
        assert (await one.tags("big", None, "")).entries == [*expected, "zzz"]
        assert len(queries) == 1  # the version and the rows since, in one statement
        queries.clear()
        await two.tag_deleted("big", "t00000")
        assert (await one.tags("big", None, "")).entries == [*expected[1:], "zzz"]
        assert queries
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_a_whole_list_says_which_names_were_inserted_since_the_version_before(
    tmp_path: Path,
) -> None:
    """So that the API can insert them into the body it encoded for that version: a tag
    pushed here or caught up from another process; a moved tag inserts nothing; after
    a removal nothing is said."""
    record = _record()

    async def run() -> None:
        one, two = await _seeded_pair(tmp_path)
        first = await one.tags("big", None, "")
        assert first.since is None and first.added == ()
        await one.manifest_put("big", record, "t00500x")
        pushed = await one.tags("big", None, "")
        assert (pushed.since, pushed.added) == (first.version, ("t00500x",))
        await one.manifest_put("big", record, "t00001")  # moved, not added
        moved = await one.tags("big", None, "")
        assert (moved.since, moved.added) == (pushed.version, ())
        assert moved.version != pushed.version
        for tag in ("zz-new", "a-new"):
            await two.manifest_put("big", record, tag)
        caught_up = await one.tags("big", None, "")
        assert (caught_up.since, caught_up.added) == (moved.version, ("a-new", "zz-new"))
        assert (await one.tags("big", None, "")).since == moved.version  # unchanged since
        await two.tag_deleted("big", "a-new")
        reread = await one.tags("big", None, "")
        assert reread.since is None and reread.added == ()
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_tag_writes_that_share_a_transaction_keep_the_list_exact(tmp_path: Path) -> None:
    """Concurrent tag pushes and deletions through one process (group commit) never
    leave a kept list that misses one of them."""
    path = str(tmp_path / "index.db")
    record = _record()

    async def run() -> None:
        index = SqlIndex(SqliteDatabase(path))
        await index.migrate()
        expected = set(await _seed_tags(index, "big", 1100))
        for round_ in range(5):
            assert set((await index.tags("big", None, "")).entries) == expected
            new = [f"n{round_}-{i}" for i in range(6)]
            gone = sorted(expected)[:3]
            await asyncio.gather(*(index.manifest_put("big", record, t) for t in new),
                                 *(index.tag_deleted("big", t) for t in gone))
            expected = (expected | set(new)) - set(gone)
            assert set((await index.tags("big", None, "")).entries) == expected
        await index.aclose()

    asyncio.run(run())


def test_a_whole_list_and_its_version_are_one_trip_to_the_database(index: SqlIndex) -> None:
    """Not kept yet (or too small to keep): the version and the names in one statement,
    one hop to SQLite's thread; the names come back as one text, split and sorted."""

    async def run() -> None:
        await index.migrate()
        big = await _seed_tags(index, "big", 1100)
        small = await _seed_tags(index, "small", 5)
        queries = _count_queries(index)
        assert (await index.tags("big", None, "")).entries == big
        assert (await index.tags("small", None, "")).entries == small
        assert len(queries) == 2
        with pytest.raises(NameUnknown):
            await index.tags("nothing", None, "")
        await index.aclose()

    asyncio.run(run())


def test_a_page_is_one_statement_with_the_repository_check(index: SqlIndex) -> None:
    """A list not kept: each page is read with the repository's row (NAME_UNKNOWN for a
    repository without tags), in one trip; past the last tag an empty page."""

    async def run() -> None:
        await index.migrate()
        tags = await _seed_tags(index, "small", 5)
        await index.layers_linked("layers-only", [Digest.parse("sha256:" + "ab" * 32)], 3)
        queries = _count_queries(index)
        assert await index.tags("small", 2, "") == Page(tags[:2], True)
        assert await index.tags("small", 2, tags[1]) == Page(tags[2:4], True)
        assert await index.tags("small", 2, tags[3]) == Page(tags[4:], False)
        assert await index.tags("small", 2, tags[4]) == Page([], False)
        assert await index.tags("small", None, tags[2]) == Page(tags[3:], False)
        assert len(queries) == 5
        for name in ("nothing", "layers-only"):
            with pytest.raises(NameUnknown):
                await index.tags(name, 2, "")
        await index.aclose()

    asyncio.run(run())


def test_a_name_holding_the_separator_is_listed_from_rows(index: SqlIndex) -> None:
    """The API never stores such a tag, but the index takes what it is given: a newline
    in a name breaks the joined text's count, and the rows are read instead."""

    async def run() -> None:
        await index.migrate()
        tags = await _seed_tags(index, "big", 1100)
        await index.manifest_put("big", _record(), "odd\nname")
        queries = _count_queries(index)
        assert (await index.tags("big", None, "")).entries == sorted([*tags, "odd\nname"])
        assert len(queries) == 2 and "ORDER BY tag" in queries[1]
        await index.aclose()

    asyncio.run(run())


def test_a_kept_list_behind_by_tag_pushes_reads_only_the_new_tags(tmp_path: Path) -> None:
    asyncio.run(catch_up(*_two_processes(tmp_path)))


async def catch_up(one: SqlIndex, two: SqlIndex) -> None:
    """Another worker's tag pushes: the kept list catches up with the tags written since
    its version; a removal makes it read the whole list again (also run on PostgreSQL,
    whose state is never known: there every listing reads the version)."""
    record = _record()
    await one.migrate()
    repo = f"big{id(one)}"
    tags = await _seed_tags(two, repo, 1100)
    assert (await one.tags(repo, None, "")).entries == tags
    queries = _count_queries(one)
    for tag in ("a-new", "t00005", "zz-new"):  # t00005 moved, not added
        await two.manifest_put(repo, record, tag)
    assert (await one.tags(repo, None, "")).entries == ["a-new", *tags, "zz-new"]
    # The version and the rows written since, in one statement.
    assert len(queries) == 1 and "tag_version >" in queries[0]
    queries.clear()
    assert (await one.tags(repo, 1, "t00004")).entries == ["t00005"]
    if one.db.state() is not None:
        assert queries == []  # caught up, and nothing committed since
    queries.clear()
    await one.manifest_put(repo, record, "t00005x")  # here: the kept list follows
    assert (await one.tags(repo, 2, "t00005")).entries == ["t00005x", "t00006"]
    assert len(queries) <= 1  # at most the version (with nothing since)
    queries.clear()
    # A push here after another worker's: the kept list, two pushes behind, is kept
    # and catches up (it used to be dropped, and the whole list read again).
    await two.manifest_put(repo, record, "zz-two")
    await one.manifest_put(repo, record, "a-one")
    expected = sorted([*tags, "a-new", "a-one", "t00005x", "zz-new", "zz-two"])
    assert (await one.tags(repo, None, "")).entries == expected
    assert len(queries) == 1 and "tag_version >" in queries[0]
    queries.clear()
    await two.tag_deleted(repo, "a-new")
    await two.manifest_put(repo, record, "zz-newer")
    expected = sorted([*tags, "a-one", "t00005x", "zz-new", "zz-newer", "zz-two"])
    assert (await one.tags(repo, None, "")).entries == expected
    # A removal moved the version away: the rows since are of no use, the whole list
    # is read (its version known from the first trip).
    assert len(queries) == 2 and "count(*)" in queries[1]
    await one.aclose()
    await two.aclose()
