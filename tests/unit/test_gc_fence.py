"""The fence between manifest PUTs and the online sweep (dockyard.index.fence), on SQLite:
each interleaving of the two protocols, replayed step by step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from tests.unit.test_index_sql import _digest, _manifest

from dockyard.errors import ManifestBlobUnknown
from dockyard.index import SqlIndex
from dockyard.index.fence import SWEEP_TTL, BlobFence
from dockyard.index.records import manifest_record
from dockyard.index.sqlite import SqliteDatabase

CONFIG, LAYER = _digest(b"config"), _digest(b"layer")


def run(tmp_path: Path, body: Callable[[SqlIndex, BlobFence], Awaitable[None]]) -> None:
    async def main() -> None:
        index = SqlIndex(SqliteDatabase(str(tmp_path / "index.db")))
        await index.migrate()
        fence = BlobFence(index.db)
        await fence.prepare()
        try:
            await body(index, fence)
        finally:
            await index.aclose()

    asyncio.run(main())


def test_sweep_first_refuses_the_put(tmp_path: Path) -> None:
    async def body(index: SqlIndex, fence: BlobFence) -> None:
        safe, _ = await fence.begin_sweep({LAYER})
        assert safe == {LAYER}
        with pytest.raises(ManifestBlobUnknown) as caught:
            async with fence.hold({CONFIG, LAYER}):
                raise AssertionError("the PUT must not go on")
        assert caught.value.detail == str(LAYER)
        await fence.end_sweep({LAYER})
        assert not await index.db.fetch("SELECT * FROM gc_claims")  # the claims went too
        async with fence.hold({CONFIG, LAYER}):
            pass  # once the sweep is over, the PUT goes through (the blob is checked after)

    run(tmp_path, body)


def test_put_first_keeps_the_blob(tmp_path: Path) -> None:
    async def body(index: SqlIndex, fence: BlobFence) -> None:
        async with fence.hold({CONFIG, LAYER}):
            safe, _ = await fence.begin_sweep({LAYER, _digest(b"orphan")})
            assert safe == {_digest(b"orphan")}
            await fence.end_sweep({LAYER, _digest(b"orphan")})
            # The PUT indexes its manifest before it lets go of the claim...
            payload = _manifest(CONFIG, [LAYER])
            await index.manifest_put("repo", manifest_record(_digest(payload), payload), "v1")
        # ... so a sweep after it finds the reference in the index.
        safe, _ = await fence.begin_sweep({LAYER, CONFIG, _digest(payload)})
        assert safe == set()
        await fence.end_sweep({LAYER, CONFIG, _digest(payload)})

    run(tmp_path, body)


def test_a_dead_collectors_rows_expire_and_are_reset(tmp_path: Path) -> None:
    async def body(index: SqlIndex, fence: BlobFence) -> None:
        await fence.begin_sweep({LAYER})  # and the collector dies
        from dockyard.index.db import Stmt

        await index.db.write([Stmt("UPDATE gc_sweeping SET since = ?",
                                   (time.time() - SWEEP_TTL - 1,))])
        async with fence.hold({LAYER}):
            pass  # too old to be a live sweep
        await fence.begin_sweep({LAYER})
        await fence.reset()  # the next collector, under the lease
        async with fence.hold({LAYER}):
            pass

    run(tmp_path, body)


def test_untagged_manifests_fenced_against_tags_and_new_parents(tmp_path: Path) -> None:
    async def body(index: SqlIndex, fence: BlobFence) -> None:
        child = _manifest(CONFIG, [LAYER])
        other = _manifest(CONFIG, [_digest(b"other")])
        c, o = _digest(child), _digest(other)
        await index.manifest_put("repo", manifest_record(c, child), None)
        await index.manifest_put("repo", manifest_record(o, other), None)
        # Tagged meanwhile: kept. Listed by an index pushed meanwhile: kept.
        await index.manifest_put("repo", manifest_record(o, other), "now-tagged")
        parent = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
                  b'"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                  b'"digest":"' + str(c).encode() + b'","size":1}]}')
        p = _digest(parent)
        await index.manifest_put("repo", manifest_record(p, parent), None)
        assert await fence.begin_manifest_sweep("repo", {c, o}) == set()
        await fence.end_sweep({c, o})
        # The parent goes in the same sweep: then its child may go too.
        assert await fence.begin_manifest_sweep("repo", {c, p}) == {c, p}
        await fence.end_sweep({c, p})
        # A PUT naming the manifest (a re-push) while it is being unlinked is refused.
        await fence.begin_manifest_sweep("repo", {c})
        with pytest.raises(ManifestBlobUnknown):
            async with fence.hold({c}):
                pass

    run(tmp_path, body)
