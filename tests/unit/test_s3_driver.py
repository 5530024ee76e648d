"""The s3 driver against moto's S3 server (a real process on loopback, not a mock).

Each test gets its own ``rootdirectory`` in one bucket, so tests never see each other's
keys. Round trips are counted on the client (one botocore ``before-send`` per request).
moto enforces S3's 5 MiB minimum for all but the last part, as S3 does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from tests.support.backends import MotoServer, TcpProxy, s3_params, shared_moto
from tests.support.data import blob
from tests.unit.test_driver_contract import contract

from dockyard.storage.drivers.base import (
    CheckedDriver,
    FileInfo,
    InvalidOffset,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from dockyard.storage.drivers.factory import DriverConfigError, create_driver
from dockyard.storage.drivers.s3 import MIN_CHUNK_SIZE, READ_CHUNK, S3Driver, S3Parameters

T = TypeVar("T")
MiB = 1 << 20
CHUNK = MIN_CHUNK_SIZE  # the smallest chunksize, so multipart paths run on small files

pytestmark = pytest.mark.timeout(300)

# The contract: test_writer_size_close_and_cancel has its own version here (an object
# store reads only what was committed); S3 keeps modification times in whole seconds.
globals().update(
    contract(without={"test_writer_size_close_and_cancel", "test_mod_time_follows_writes"})
)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    return shared_moto(tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def bucket(moto: MotoServer) -> str:
    return moto.create_bucket("unit")


class Harness:
    """Drivers on one test's own root directory; :meth:`run` runs a coroutine in a fresh
    event loop and closes every driver's client afterwards."""

    def __init__(self, moto: MotoServer, bucket: str) -> None:
        self.moto = moto
        self.bucket = bucket
        self.root = f"/t-{uuid.uuid4().hex[:12]}"
        self.drivers: list[S3Driver] = []
        self.ops: Counter[str] = Counter()

    def make(self, *, redirect: bool = True, list_max: int = 1000,
             endpoint: str | None = None, **params: Any) -> CheckedDriver:
        base = s3_params(endpoint or self.moto.url, self.bucket, root=self.root,
                         chunksize=CHUNK, **params)
        raw = S3Driver(S3Parameters.parse(base), redirect=redirect, list_max=list_max)
        self.drivers.append(raw)
        return CheckedDriver(raw)

    def key(self, path: str) -> str:
        return (self.root + path).lstrip("/")

    async def count(self, driver: CheckedDriver) -> Counter[str]:
        """Operations sent by ``driver`` from now on, by name (reset on each call)."""
        client = await driver.inner.s3()  # type: ignore[attr-defined]
        self.ops = Counter()

        def on_send(**kwargs: Any) -> None:
            self.ops[kwargs["event_name"].rsplit(".", 1)[1]] += 1

        client.meta.events.register("before-send.s3", on_send, unique_id="count-ops")
        return self.ops

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            try:
                return await fn()
            finally:
                for d in self.drivers:
                    await d.aclose()

        return asyncio.run(main())

    def uploads(self, path: str) -> list[str]:
        """Upload ids of in-progress MPUs on exactly ``path`` (seen through boto3)."""
        key = self.key(path)
        resp = self.moto.client().list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        return [u["UploadId"] for u in resp.get("Uploads", []) if u["Key"] == key]

    def parts(self, path: str) -> list[int]:
        client = self.moto.client()
        (upload_id,) = self.uploads(path)
        resp = client.list_parts(Bucket=self.bucket, Key=self.key(path), UploadId=upload_id)
        return [p["Size"] for p in resp.get("Parts", [])]

    def object_size(self, path: str) -> int | None:
        client = self.moto.client()
        try:
            return int(client.head_object(Bucket=self.bucket, Key=self.key(path))["ContentLength"])
        except client.exceptions.ClientError:
            return None


@pytest.fixture
def s3(moto: MotoServer, bucket: str) -> Harness:
    return Harness(moto, bucket)


@pytest.fixture
def driver(s3: Harness) -> CheckedDriver:
    """For the contract tests of test_driver_contract.py: a fresh root directory in the bucket."""
    return s3.make()


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def write(driver: CheckedDriver, path: str, data: bytes, offset: int = 0, *,
                commit: bool = False, piece: int = MiB) -> int:
    """Write ``data`` at ``offset`` in ``piece``-sized calls, then close (or commit)."""
    writer = await driver.writer(path, offset)
    for start in range(0, len(data), piece):
        await writer.write(data[start : start + piece])
    await (writer.commit() if commit else writer.close())
    return writer.size


# -- configuration ---------------------------------------------------------------------


def _params(**extra: Any) -> dict[str, Any]:
    return {**s3_params("http://127.0.0.1:9", "bucket-x"), **extra}


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"nosuchkey": 1}, "nosuchkey"),
        ({"chunksize": 5 * MiB - 1}, "chunksize"),
        ({"chunksize": "ten"}, "chunksize"),
        ({"multipartcopychunksize": 1024}, "multipartcopychunksize"),
        ({"multipartcopymaxconcurrency": 0}, "multipartcopymaxconcurrency"),
        ({"multipartcopythresholdsize": -1}, "multipartcopythresholdsize"),
        ({"secure": "maybe"}, "secure"),
        ({"forcepathstyle": 3}, "forcepathstyle"),
        ({"storageclass": "DEEP_FREEZER"}, "storageclass"),
        ({"objectacl": "everyone"}, "objectacl"),
        ({"v4auth": False}, "v4auth"),
        ({"bucket": ""}, "bucket"),
        ({"regionendpoint": "", "region": ""}, "region"),
    ],
)
def test_invalid_parameters_name_their_key(extra: dict[str, Any], key: str) -> None:
    with pytest.raises(DriverConfigError, match=rf"^storage\.s3\.{key}: "):
        create_driver("s3", _params(**extra))


def test_parameters_as_distribution_reads_them() -> None:
    p = S3Parameters.parse(_params(chunksize="6291456", secure="false", encrypt="true",
                                   keyid="k-1", storageclass="reduced_redundancy"))
    assert p.chunk_size == 6 * MiB and not p.secure and p.encrypt
    assert p.storage_class == "REDUCED_REDUNDANCY"
    # distribution 2.8 always uses path-style requests with regionendpoint
    assert p.force_path_style
    assert not S3Parameters.parse(_params(forcepathstyle=False)).force_path_style
    assert S3Parameters.parse(_params(regionendpoint="127.0.0.1:9", secure=True)).endpoint_url \
        == "https://127.0.0.1:9"
    assert S3Parameters.parse(_params(regionendpoint="127.0.0.1:9")).endpoint_url \
        == "http://127.0.0.1:9"
    defaults = S3Parameters.parse({"region": "eu-west-1", "bucket": "b-1"})
    assert defaults.chunk_size == 10 * MiB
    assert defaults.multipart_copy_chunk_size == 32 * MiB
    assert defaults.multipart_copy_threshold_size == 32 * MiB
    assert defaults.multipart_copy_max_concurrency == 100
    assert not defaults.force_path_style and defaults.endpoint_url is None


def test_factory_builds_a_checked_s3_driver() -> None:
    driver = create_driver("s3", _params(), redirect=False)
    assert isinstance(driver, CheckedDriver) and isinstance(driver.inner, S3Driver)
    assert isinstance(driver.inner, StorageDriver)
    assert driver.inner.redirect is False
    assert create_driver("s3", _params()).inner.redirect is True  # type: ignore[attr-defined]


# -- keys and whole files -------------------------------------------------------------


def test_keys_are_distributions(s3: Harness) -> None:
    driver = s3.make()
    flat = CheckedDriver(S3Driver(S3Parameters.parse(s3_params(s3.moto.url, s3.bucket))))
    s3.drivers.append(flat.inner)  # type: ignore[arg-type]
    path = "/docker/registry/v2/repositories/a/_layers/sha256/ab/link"

    async def go() -> None:
        await driver.put_content(path, b"x")
        await flat.put_content(f"/k-{s3.root[3:]}", b"y")

    s3.run(go)
    client = s3.moto.client()
    stored = client.get_object(Bucket=s3.bucket, Key=s3.root.lstrip("/") + path)
    assert stored["Body"].read() == b"x"
    # no root directory: no leading slash either
    assert client.head_object(Bucket=s3.bucket, Key=f"k-{s3.root[3:]}")["ContentLength"] == 1


def test_put_get_stat_overwrite(s3: Harness) -> None:
    driver = s3.make()

    async def go() -> None:
        with pytest.raises(PathNotFound):
            await driver.get_content("/a/b")
        await driver.put_content("/a/b", b"hello")
        assert await driver.get_content("/a/b") == b"hello"
        await driver.put_content("/a/b", b"")
        assert await driver.get_content("/a/b") == b""
        info = await driver.stat("/a/b")
        assert (info.size, info.is_dir) == (0, False)
        assert abs(info.mod_time - datetime.now(UTC).timestamp()) < 300
        assert (await driver.stat("/a")).is_dir
        assert (await driver.inner.stat("/")).is_dir
        with pytest.raises(PathNotFound):
            await driver.stat("/a/c")
        with pytest.raises(PathNotFound):
            await driver.stat("/a/b/c")

    s3.run(go)


def test_stat_round_trips(s3: Harness) -> None:
    driver = s3.make()

    async def go() -> None:
        await driver.put_content("/d/f", b"x")
        ops = await s3.count(driver)
        await driver.stat("/d/f")
        assert ops == {"HeadObject": 1}
        ops = await s3.count(driver)
        await driver.stat("/d")
        # not an object: a directory or a file being written, asked concurrently
        assert ops == {"HeadObject": 1, "ListObjectsV2": 1, "ListMultipartUploads": 1}

    s3.run(go)


def test_list_and_pagination(s3: Harness) -> None:
    driver = s3.make(list_max=2)  # 2 keys a page: every listing below pages

    async def go() -> None:
        for name in ("a", "b", "c", "d/x", "e/y/z", "ab"):
            await driver.put_content(f"/top/{name}", name.encode())
        await driver.put_content("/top-sibling/x", b"")
        assert sorted(await driver.list("/top")) == [
            "/top/a", "/top/ab", "/top/b", "/top/c", "/top/d", "/top/e",
        ]
        assert await driver.list("/top/e") == ["/top/e/y"]
        with pytest.raises(PathNotFound):
            await driver.list("/nothing")
        assert sorted(await driver.inner.list("/")) == ["/top", "/top-sibling"]

    s3.run(go)


def test_walk_is_depth_first_with_directories(s3: Harness) -> None:
    driver = s3.make(list_max=3)

    async def go() -> list[FileInfo]:
        for name in ("a/1", "a/b/2", "a/b/3", "c", "d/e/f/4"):
            await driver.put_content(f"/w/{name}", b"12")
        with pytest.raises(PathNotFound):
            [i async for i in driver.walk("/nowhere")]
        return [i async for i in driver.walk("/w")]

    infos = s3.run(go)
    assert [(i.path, i.is_dir) for i in infos] == [
        ("/w/a", True), ("/w/a/1", False), ("/w/a/b", True), ("/w/a/b/2", False),
        ("/w/a/b/3", False), ("/w/c", False), ("/w/d", True), ("/w/d/e", True),
        ("/w/d/e/f", True), ("/w/d/e/f/4", False),
    ]
    assert all(i.size == 2 for i in infos if not i.is_dir)


def test_delete_file_tree_and_batches(s3: Harness) -> None:
    driver = s3.make(list_max=3)  # DeleteObjects in batches of 3

    async def go() -> None:
        for n in range(10):
            await driver.put_content(f"/del/tree/{n}", b"x")
        await driver.put_content("/del/tree-keep", b"k")
        await driver.put_content("/del/file", b"f")
        await driver.delete("/del/file")
        with pytest.raises(PathNotFound):
            await driver.stat("/del/file")
        ops = await s3.count(driver)
        await driver.delete("/del/tree")
        assert ops["DeleteObjects"] == 4
        with pytest.raises(PathNotFound):
            await driver.list("/del/tree")
        assert await driver.get_content("/del/tree-keep") == b"k"  # a sibling, not a child
        with pytest.raises(PathNotFound):
            await driver.delete("/del/tree")

    s3.run(go)


# -- reader ---------------------------------------------------------------------------


def test_reader_offsets_and_chunks(s3: Harness) -> None:
    driver = s3.make()
    data = blob(3 * MiB + 123)

    async def go() -> None:
        await driver.put_content("/r", data)
        chunks = [c async for c in driver.reader("/r")]
        assert b"".join(chunks) == data
        assert max(len(c) for c in chunks) <= READ_CHUNK
        for offset in (1, MiB, len(data) - 1):
            assert await read_all(driver.reader("/r", offset)) == data[offset:]
        assert await read_all(driver.reader("/r", len(data))) == b""
        with pytest.raises(InvalidOffset):
            await read_all(driver.reader("/r", len(data) + 1))
        with pytest.raises(PathNotFound):
            await read_all(driver.reader("/missing", 0))
        with pytest.raises(PathNotFound):
            await read_all(driver.reader("/missing", 5))
        # an early stop releases the response
        async for _ in driver.reader("/r"):
            break
        await driver.put_content("/empty", b"")
        assert await read_all(driver.reader("/empty")) == b""

    s3.run(go)


# -- writer ---------------------------------------------------------------------------


def test_writer_parts_are_chunksize_and_resume_across_instances(s3: Harness) -> None:
    first, second = s3.make(), s3.make()
    data = blob(14 * MiB, seed=1)

    async def go() -> None:
        assert await write(first, "/w/data", data[: 12 * MiB]) == 12 * MiB
        # closed, not committed: an MPU with 5+5+2 MiB, no object
        assert s3.parts("/w/data") == [5 * MiB, 5 * MiB, 2 * MiB]
        assert s3.object_size("/w/data") is None
        assert (await second.stat("/w/data")).size == 12 * MiB
        with pytest.raises(PathNotFound):
            await second.get_content("/w/data")  # not readable before commit
        # another driver instance goes on where the first stopped
        writer = await second.writer("/w/data", 12 * MiB)
        assert writer.size == 12 * MiB
        await writer.write(data[12 * MiB :])
        await writer.commit()
        assert writer.size == 14 * MiB
        await writer.close()  # after commit: nothing to do
        assert await first.get_content("/w/data") == data
        assert s3.uploads("/w/data") == []

    s3.run(go)


def test_writer_small_chunks_exercise_the_under_5mib_paths(s3: Harness) -> None:
    """1 MiB and 6 MiB chunks alternate, each by a new writer (as PATCH requests do)."""
    driver = s3.make()
    sizes = [MiB, MiB, 6 * MiB, MiB, 6 * MiB + 17, 300, 0, 2 * MiB]
    data = blob(sum(sizes), seed=2)

    async def go() -> None:
        offset = 0
        for i, size in enumerate(sizes):
            writer = await driver.writer("/small/data", offset)
            await writer.write(data[offset : offset + size])
            offset += size
            await (writer.commit() if i == len(sizes) - 1 else writer.close())
            assert writer.size == offset
            if i < len(sizes) - 1:
                assert (await driver.stat("/small/data")).size == offset
        assert await driver.get_content("/small/data") == data
        assert s3.uploads("/small/data") == []

    s3.run(go)


def test_append_after_small_part_copies_or_reads_back(s3: Harness) -> None:
    driver = s3.make()
    data = blob(8 * MiB, seed=3)

    async def go() -> None:
        await write(driver, "/cp/data", data[: 6 * MiB])  # parts 5 + 1 (small last)
        ops = await s3.count(driver)
        await write(driver, "/cp/data", data[6 * MiB : 7 * MiB], 6 * MiB)
        # >= 5 MiB: completed, then the object is part 1 of a new MPU, server-side
        assert ops["CompleteMultipartUpload"] == 1 and ops["UploadPartCopy"] == 1
        assert ops.get("GetObject", 0) == 0
        assert s3.parts("/cp/data") == [6 * MiB, MiB]
        assert s3.object_size("/cp/data") is None  # the interim object is gone

        await write(driver, "/rb/data", data[:MiB])
        ops = await s3.count(driver)
        await write(driver, "/rb/data", data[MiB : 2 * MiB], MiB)
        # < 5 MiB: read back (bounded) into the first part of a new MPU
        assert ops["GetObject"] == 1 and ops.get("UploadPartCopy", 0) == 0
        assert s3.parts("/rb/data") == [2 * MiB]
        assert s3.object_size("/rb/data") is None

        for path, size in (("/cp/data", 7 * MiB), ("/rb/data", 2 * MiB)):
            writer = await driver.writer(path, size)
            await writer.commit()
            assert await driver.get_content(path) == data[:size]

    s3.run(go)


@pytest.mark.parametrize(
    ("cut", "how"),
    [
        (10 * MiB, "part boundary: complete with the parts before it"),
        (7 * MiB + 5, "inside a part, >= 5 MiB: copy bytes=0-(offset-1)"),
        (3 * MiB + 1, "under 5 MiB: read back"),
        (5 * MiB, "first part boundary"),
    ],
)
def test_writer_at_lower_offset_cuts_the_excess(s3: Harness, cut: int, how: str) -> None:
    driver = s3.make()
    data = blob(12 * MiB, seed=4)
    tail = blob(MiB + 3, seed=5)

    async def go() -> None:
        await write(driver, "/t/data", data)  # parts 5 + 5 + 2
        writer = await driver.writer("/t/data", cut)
        assert writer.size == cut
        await writer.close()
        assert (await driver.stat("/t/data")).size == cut, how
        writer = await driver.writer("/t/data", cut)
        await writer.write(tail)
        await writer.commit()
        assert await driver.get_content("/t/data") == data[:cut] + tail
        assert s3.uploads("/t/data") == []

    s3.run(go)


def test_writer_offsets_on_committed_files(s3: Harness) -> None:
    driver = s3.make()
    data = blob(7 * MiB, seed=6)

    async def go() -> None:
        await write(driver, "/c/data", data, commit=True)
        with pytest.raises(InvalidOffset):
            await driver.writer("/c/data", len(data) + 1)
        with pytest.raises(PathNotFound):
            await driver.writer("/c/none", 5)
        # truncating a committed object (>= 5 MiB, inside: UploadPartCopy with a range)
        writer = await driver.writer("/c/data", 6 * MiB)
        await writer.write(b"!")
        await writer.commit()
        assert await driver.get_content("/c/data") == data[: 6 * MiB] + b"!"
        # offset 0 starts afresh, whatever was there
        await write(driver, "/c/data", b"new", commit=True)
        assert await driver.get_content("/c/data") == b"new"
        await write(driver, "/c/data", data[:MiB])  # an MPU on top of the object
        writer = await driver.writer("/c/data", 0)
        await writer.close()
        assert s3.uploads("/c/data") == []
        assert (await driver.stat("/c/data")).size == 0

    s3.run(go)


def test_failed_chunk_is_cut_off_by_reopening_at_the_acknowledged_offset(s3: Harness) -> None:
    """What uploads.py does when a PATCH dies: reopen at the acknowledged offset, close."""
    driver = s3.make()
    data = blob(9 * MiB, seed=7)

    async def go() -> None:
        await write(driver, "/f/data", data[: 6 * MiB])  # acknowledged: 6 MiB
        writer = await driver.writer("/f/data", 6 * MiB)
        await writer.write(data[6 * MiB :] + b"garbage" * 1000)  # the request dies here
        await writer.close()
        await (await driver.writer("/f/data", 6 * MiB)).close()
        assert (await driver.stat("/f/data")).size == 6 * MiB
        await write(driver, "/f/data", data[6 * MiB :], 6 * MiB, commit=True)
        assert await driver.get_content("/f/data") == data

    s3.run(go)


def test_commit_of_a_small_file_is_one_put(s3: Harness) -> None:
    driver = s3.make()

    async def go() -> None:
        writer = await driver.writer("/one/data", 0)
        ops = await s3.count(driver)
        await writer.write(b"a" * 1000)
        await writer.write(b"b" * 1000)
        await writer.commit()
        assert ops == {"PutObject": 1}
        assert await driver.get_content("/one/data") == b"a" * 1000 + b"b" * 1000
        writer = await driver.writer("/empty/data", 0)
        await writer.commit()
        assert await driver.get_content("/empty/data") == b""

    s3.run(go)


def test_writer_size_close_and_cancel(driver: CheckedDriver) -> None:
    """The contract's test, but as FileWriter documents it for object stores: what a closed
    writer wrote is resumable (stat, writer at its size), readable only after commit."""

    async def scenario() -> None:
        writer = await driver.writer("/up/data")
        await writer.write(b"abc")
        await writer.write(b"de")
        assert writer.size == 5
        await writer.close()
        await writer.close()  # idempotent
        assert (await driver.stat("/up/data")).size == 5
        writer = await driver.writer("/up/data", 5)
        assert writer.size == 5
        await writer.write(b"f")
        await writer.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat("/up/data")
        await write(driver, "/up/data", b"abcde")
        with pytest.raises(PathNotFound):
            await driver.get_content("/up/data")  # an in-progress multipart upload
        await (await driver.writer("/up/data", 5)).commit()
        assert await driver.get_content("/up/data") == b"abcde"

    asyncio.run(scenario())


def test_cancel_aborts_and_deletes(s3: Harness) -> None:
    driver = s3.make()

    async def go() -> None:
        await write(driver, "/x/data", blob(6 * MiB))
        writer = await driver.writer("/x/data", 6 * MiB)
        await writer.write(b"more")
        await writer.cancel()
        assert s3.uploads("/x/data") == []
        with pytest.raises(PathNotFound):
            await driver.stat("/x/data")

    s3.run(go)


def test_buffer_never_exceeds_chunksize(s3: Harness) -> None:
    driver = s3.make()

    async def go() -> None:
        writer = await driver.writer("/mem/data", 0)
        await writer.write(blob(3 * MiB))
        assert len(writer._buffer) == 3 * MiB  # type: ignore[attr-defined]
        await writer.write(blob(11 * MiB))  # 5 + 5 uploaded, 4 left
        assert len(writer._buffer) == 4 * MiB  # type: ignore[attr-defined]
        await writer.close()
        assert s3.parts("/mem/data") == [5 * MiB, 5 * MiB, 4 * MiB]

    s3.run(go)


# -- move, delete with uploads, redirects, purging --------------------------------------


def test_move_copies_server_side_then_deletes(s3: Harness) -> None:
    driver = s3.make()
    data = blob(2 * MiB, seed=8)

    async def go() -> None:
        await driver.put_content("/mv/src", data)
        await driver.put_content("/mv/dst", b"old")
        ops = await s3.count(driver)
        await driver.move("/mv/src", "/mv/dst")
        assert ops == {"HeadObject": 1, "CopyObject": 1, "DeleteObject": 1}
        assert await driver.get_content("/mv/dst") == data
        with pytest.raises(PathNotFound):
            await driver.stat("/mv/src")
        with pytest.raises(PathNotFound):
            await driver.move("/mv/src", "/mv/other")

    s3.run(go)


def test_multipart_copy_above_threshold(s3: Harness) -> None:
    driver = s3.make(multipartcopythresholdsize=MiB, multipartcopychunksize=5 * MiB,
                     multipartcopymaxconcurrency=2)
    data = blob(12 * MiB + 7, seed=9)

    async def go() -> None:
        await write(driver, "/mp/src", data, commit=True)
        ops = await s3.count(driver)
        await driver.move("/mp/src", "/mp/dst")
        assert ops["UploadPartCopy"] == 3 and ops["CompleteMultipartUpload"] == 1
        assert ops.get("CopyObject", 0) == 0
        assert await driver.get_content("/mp/dst") == data
        assert s3.uploads("/mp/dst") == []

    s3.run(go)


def test_deleting_a_directory_aborts_uploads_below_it(s3: Harness) -> None:
    driver = s3.make()

    async def go() -> None:
        await driver.put_content("/u/id/startedat", b"2024-01-01T00:00:00Z")
        await write(driver, "/u/id/data", blob(MiB))
        assert s3.uploads("/u/id/data")
        await driver.delete("/u/id")
        assert s3.uploads("/u/id/data") == []
        # an upload alone still counts as something to delete
        await write(driver, "/u/only/data", blob(10))
        await driver.delete("/u/only")
        assert s3.uploads("/u/only/data") == []
        with pytest.raises(PathNotFound):
            await driver.delete("/u/only")

    s3.run(go)


def test_redirect_urls_are_presigned_and_work(s3: Harness) -> None:
    driver = s3.make()
    no_redirect = s3.make(redirect=False)
    data = blob(100_000, seed=10)

    async def go() -> tuple[str | None, str | None, str | None, list[str | None]]:
        await driver.put_content("/blob/data", data)
        return (await driver.redirect_url("/blob/data", "GET"),
                await driver.redirect_url("/blob/data", "HEAD"),
                await no_redirect.redirect_url("/blob/data", "GET"),
                [await driver.redirect_url("/blob/data", "GET"),
                 await driver.redirect_url("/blob/other", "GET")])

    get_url, head_url, none, again = s3.run(go)
    assert none is None
    # Signed once, handed out again for a while (still valid for at least 15 minutes).
    assert again[0] == get_url and again[1] not in (None, get_url)
    assert get_url is not None and head_url is not None
    assert get_url.startswith(f"{s3.moto.url}/{s3.bucket}/{s3.key('/blob/data')}?")
    assert "X-Amz-Signature=" in get_url and "X-Amz-Expires=1200" in get_url
    assert httpx.get(get_url).content == data
    assert httpx.head(head_url).headers["content-length"] == str(len(data))


def test_abort_stale_multipart_uploads(s3: Harness) -> None:
    driver = s3.make()
    other = Harness(s3.moto, s3.bucket)
    elsewhere = other.make()

    async def go() -> tuple[int, int]:
        await write(driver, "/p/1/data", blob(10))
        await write(driver, "/p/2/data", blob(10))
        await write(elsewhere, "/p/3/data", blob(10))
        raw: S3Driver = driver.inner  # type: ignore[assignment]
        none = await raw.abort_stale_multipart_uploads(datetime(2000, 1, 1, tzinfo=UTC))
        # moto reports every upload as initiated in 2010: a cutoff of now takes them all
        all_ = await raw.abort_stale_multipart_uploads(datetime.now(UTC) + timedelta(minutes=1))
        await elsewhere.inner.aclose()  # type: ignore[attr-defined]
        return none, all_

    assert s3.run(go) == (0, 2)
    assert s3.uploads("/p/1/data") == [] and s3.uploads("/p/2/data") == []
    assert other.uploads("/p/3/data")  # another root directory is left alone


# -- errors ---------------------------------------------------------------------------


def test_unreachable_backend_is_a_storage_error_not_a_missing_path(s3: Harness) -> None:
    proxy = TcpProxy(s3.moto.port)
    proxy.start()
    driver = s3.make(endpoint=proxy.url)

    async def go() -> None:
        await driver.put_content("/e/f", b"x")
        proxy.cut()
        for op in (driver.stat("/e/f"), driver.get_content("/e/f"), driver.list("/e"),
                   driver.put_content("/e/g", b"y"), driver.writer("/e/h", 0)):
            with pytest.raises(StorageError) as info:
                await op
            assert not isinstance(info.value, PathNotFound)
        proxy.restore()
        assert await driver.get_content("/e/f") == b"x"

    try:
        s3.run(go)
    finally:
        proxy.stop()


def test_missing_bucket_is_a_storage_error(s3: Harness) -> None:
    harness = Harness(s3.moto, f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    driver = harness.make()

    async def go() -> None:
        with pytest.raises(StorageError) as info:
            await driver.get_content("/x")
        assert not isinstance(info.value, PathNotFound)
        assert "NoSuchBucket" in str(info.value)

    harness.run(go)


@pytest.fixture(autouse=True)
def _no_cloud_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The driver must never look for credentials beyond its config (no IMDS)."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield

