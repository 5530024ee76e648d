"""The index's storage walk on S3 (moto): tags from one flat listing, each current
link matched by its ETag against the MD5 of the tag's ``index/`` digests, read only
when none matches; the result equals the filesystem walk of the same layout (issue 12).
One walk of the whole tree finds each repository as the catalog and the walk of its own
directories do, nested names included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from tests.support.backends import MotoServer, s3_params

from dockyard.digest import Digest
from dockyard.index.base import RepositoryState
from dockyard.index.walk import StorageWalker
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import GetsMany, StorageDriver
from dockyard.storage.drivers.factory import create_driver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.tags import TagStore


def _manifest(config: Digest) -> bytes:
    return (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
        f'"digest":"{config}","size":2}},"layers":[]}}'
    ).encode()


async def _write(driver: StorageDriver, repo: str) -> dict[str, Digest]:
    """A repository whose tags exercise every case; returns what each tag names."""
    blobs = BlobStore(driver)
    config = (await blobs.put(b"{}")).digest
    manifests = ManifestStore(driver, blobs, repo)
    first = await manifests.put(_manifest(config))
    second = await manifests.put(_manifest(config).replace(b"[]", b"[ ]"))
    await driver.put_content(paths.layer_link_path(repo, config), str(config).encode())
    tags = TagStore(driver, repo)
    for i in range(30):
        await tags.tag(f"plain{i:02d}", first)
    await tags.tag("moved", first)
    await tags.tag("moved", second)  # two index entries: the ETag picks the current one
    await tags.tag("newline", first)
    # Another tool's link with a newline: no index digest's MD5 matches, so it is read.
    await driver.put_content(paths.tag_current_link_path(repo, "newline"),
                             f"{first}\n".encode())
    await tags.tag("elsewhere", first)
    # current names a digest the tag's index does not hold: read, not guessed.
    await driver.put_content(paths.tag_current_link_path(repo, "elsewhere"),
                             str(second).encode())
    await driver.put_content(  # an index entry without a current link: no tag
        paths.tag_index_entry_link_path(repo, "dangling", first), str(first).encode())
    expected = {f"plain{i:02d}": first for i in range(30)}
    expected.update(moved=second, newline=first, elsewhere=second)
    return expected


async def _state(driver: StorageDriver, repo: str) -> RepositoryState:
    try:
        return await StorageWalker(driver).repository(repo)
    finally:
        await driver.aclose()


def test_the_s3_walk_equals_the_filesystem_walk(
    moto_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    repo = "walk/tags"

    read: list[str] = []

    async def build(driver: StorageDriver) -> tuple[dict[str, Digest], RepositoryState]:
        expected = await _write(driver, repo)
        get_content = driver.get_content
        get_many = cast(GetsMany, driver).get_many  # the checked driver has it

        def count(path: str) -> None:
            if path.endswith("/current/link"):
                read.append(path.split("/")[-3])

        async def counted(path: str) -> bytes:
            count(path)
            return await get_content(path)

        async def counted_many(paths: Sequence[str]) -> list[bytes | None]:
            for path in paths:
                count(path)
            return await get_many(paths)

        driver.get_content = counted  # type: ignore[method-assign]
        driver.get_many = counted_many  # type: ignore[attr-defined]
        return expected, await _state(driver, repo)

    s3 = create_driver("s3", s3_params(moto_server.url, s3_bucket))
    expected, on_s3 = asyncio.run(build(s3))
    assert sorted(read) == ["elsewhere", "newline"]  # every other tag: from the listing
    fs = create_driver("filesystem", {"rootdirectory": str(tmp_path)})
    _, on_fs = asyncio.run(build(fs))
    assert on_s3.tags == expected
    assert on_s3 == on_fs
    assert on_s3.has_tags and len(on_s3.manifests) == 2 and len(on_s3.layers) == 1
    # The filesystem reads every current link ("dangling" has none: not read).
    assert len(read) == 2 + len(expected)


async def _nested(driver: StorageDriver) -> None:
    """Names that nest and sort around each other: ``a`` holds ``a/0x`` (sorting before
    its ``_layers``) and ``a/b``; ``a-b`` sorts before ``a/`` in key order; ``up`` has
    only an upload (not a repository); ``ns`` only nested ones."""
    blobs = BlobStore(driver)
    config = (await blobs.put(b"{}")).digest
    for repo in ("a", "a/0x", "a/b", "a-b", "ns/deep/one", "ns/two"):
        await driver.put_content(paths.layer_link_path(repo, config), str(config).encode())
        manifests = ManifestStore(driver, blobs, repo)
        digest = await manifests.put(_manifest(config))
        await TagStore(driver, repo).tag(f"t-{repo.replace('/', '-')}", digest)
    await driver.put_content(
        paths.upload_startedat_path("up", "0a1b"), b"2026-12-05T12:00:00Z")


async def _one_walk_and_each(driver: StorageDriver) -> tuple[dict[str, RepositoryState],
                                                             dict[str, RepositoryState]]:
    try:
        await _nested(driver)
        walker = StorageWalker(driver)
        walked = {listing.name: await walker.state(listing)
                  async for listing in walker.listings()}
        each = {name: await walker.repository(name) async for name in walker.repositories()}
        return walked, each
    finally:
        await driver.aclose()


def test_one_walk_finds_every_repository_as_the_catalog_does(
    moto_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    for driver in (create_driver("s3", s3_params(moto_server.url, s3_bucket)),
                   create_driver("filesystem", {"rootdirectory": str(tmp_path)})):
        walked, each = asyncio.run(_one_walk_and_each(driver))
        assert sorted(walked) == sorted(each) == [
            "a", "a-b", "a/0x", "a/b", "ns/deep/one", "ns/two"]
        assert walked == each
        assert all(len(state.tags) == 1 and len(state.layers) == 1 and state.has_tags
                   for state in walked.values())
