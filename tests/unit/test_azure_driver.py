"""The azure driver against Azurite: the driver contract, and what only object stores do.

The contract tests are those of tests/unit/test_driver_contract.py, run here with this module's
``driver`` fixture (each test gets a fresh container and a root directory in it, and
blocks of 256 KiB so that small files already span several blocks). Skipped, with the
install command, when ``azurite-blob`` is not installed.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support import azure_gcs as fixtures
from tests.support.azure_gcs import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteServer,
    azure_params,
)
from tests.unit.test_driver_contract import contract, read_all, run, write_file

from dockyard.storage.drivers.azure import AzureDriver, AzureParameters
from dockyard.storage.drivers.base import CheckedDriver, StorageDriver
from dockyard.storage.drivers.factory import DriverConfigError, create_driver

KiB = 1 << 10
MiB = 1 << 20
BLOCK = 256 * KiB

azurite = fixtures.azurite  # the session's Azurite (skips when not installed)

# The contract; test_mod_time_follows_writes has its own version here (whole seconds).
globals().update(contract(without={"test_mod_time_follows_writes"}))


def make_driver(params: dict[str, Any], **kwargs: Any) -> CheckedDriver:
    return CheckedDriver(AzureDriver(AzureParameters(params), block_size=BLOCK, **kwargs))


@pytest.fixture
def params(azurite: AzuriteServer) -> dict[str, Any]:
    return azure_params(azurite, azurite.new_container(), root=f"root-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def driver(params: dict[str, Any]) -> CheckedDriver:
    return make_driver(params)


async def block_list(params: dict[str, Any], path: str) -> tuple[list[int], list[int]]:
    """(committed, uncommitted) block sizes of the blob at ``path``, read with the SDK."""
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient(
        params["serviceurl"], params["container"],
        credential=AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ) as container:
        name = f"{params.get('rootdirectory', '')}/{path.lstrip('/')}".lstrip("/")
        committed, uncommitted = await container.get_blob_client(name).get_block_list("all")
        return [b.size for b in committed], [b.size for b in uncommitted]


async def blob_names(params: dict[str, Any], *, uncommitted: bool = False) -> list[str]:
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient(
        params["serviceurl"], params["container"],
        credential=AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ) as container:
        include = ["uncommittedblobs"] if uncommitted else None
        return sorted([b.name async for b in container.list_blobs(include=include)])


def test_satisfies_the_protocol(driver: CheckedDriver) -> None:
    assert isinstance(driver.inner, StorageDriver)
    assert driver.name == "azure"


def test_mod_time_follows_writes(driver: CheckedDriver) -> None:
    """Azure's Last-Modified has whole seconds, so this waits longer than the generic test."""

    async def scenario() -> None:
        await driver.put_content("/f", b"a")
        first = (await driver.stat("/f")).mod_time
        assert abs(first - time.time()) < 60
        await asyncio.sleep(1.1)
        await write_file(driver, "/f", b"b", offset=1)
        assert (await driver.stat("/f")).mod_time > first

    run(scenario())


# -- parameters -------------------------------------------------------------------------


def test_parameters_as_distribution_reads_them() -> None:
    p = AzureParameters({"accountname": "acct", "accountkey": AZURITE_KEY, "container": "reg"})
    assert p.service_url == "https://acct.blob.core.windows.net"
    assert p.root_prefix == ""
    p = AzureParameters({
        "accountname": "acct", "accountkey": AZURITE_KEY, "container": "reg",
        "realm": "core.chinacloudapi.cn", "rootdirectory": "/a/b/",
    })
    assert p.service_url == "https://acct.blob.core.chinacloudapi.cn"
    assert p.root_prefix == "a/b/"
    p = AzureParameters({
        "accountname": "acct", "accountkey": AZURITE_KEY, "container": "reg",
        "serviceurl": "http://127.0.0.1:10000/acct/", "realm": "ignored.example",
        "copy_status_poll_delay": "250ms", "copy_status_poll_max_retry": 3,
    })
    assert p.service_url == "http://127.0.0.1:10000/acct"
    assert (p.copy_poll_delay, p.copy_poll_max_retry) == (0.25, 3)


def test_connection_string_and_shared_key_credentials() -> None:
    p = AzureParameters({
        "connectionstring": (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
        ),
        "container": "reg",
    })
    assert (p.account_name, p.account_key) == (AZURITE_ACCOUNT, AZURITE_KEY)
    assert p.service_url == f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"
    p = AzureParameters({
        "credentials": {"type": "shared_key", "accountname": "a", "accountkey": AZURITE_KEY},
        "container": "reg",
    })
    assert (p.account_name, p.service_url) == ("a", "https://a.blob.core.windows.net")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"accountkey": AZURITE_KEY, "container": "c"}, "accountname: missing"),
        ({"accountname": "a", "container": "c"}, "accountkey: missing"),
        ({"accountname": "a", "accountkey": AZURITE_KEY}, "container: missing"),
        ({"accountname": "a", "accountkey": "not base64!", "container": "c"},
         "accountkey: .*base64"),
        ({"accountname": "a", "accountkey": AZURITE_KEY, "container": "c", "bogus": 1},
         "bogus: unsupported parameter"),
        ({"accountname": "a", "accountkey": AZURITE_KEY, "container": "c",
          "serviceurl": "ftp://x"}, "serviceurl: .*not an http"),
        ({"container": "c", "credentials": {"type": "client_secret"}},
         "credentials: .*not supported"),
    ],
)
def test_bad_parameters_stop_startup(params: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message) as caught:
        create_driver("azure", params)
    assert str(caught.value).startswith("storage.azure.")


def test_factory_builds_the_azure_driver() -> None:
    driver = create_driver(
        "azure", {"accountname": "a", "accountkey": AZURITE_KEY, "container": "c"},
        redirect=False,
    )
    assert isinstance(driver, CheckedDriver) and isinstance(driver.inner, AzureDriver)
    assert driver.inner.redirect is False


# -- layout -----------------------------------------------------------------------------


def test_blob_names_are_distributions(azurite: AzuriteServer) -> None:
    """Path /a/b is blob a/b (or <root>/a/b): a container shared with distribution."""
    plain = azure_params(azurite, azurite.new_container())
    rooted = azure_params(azurite, azurite.new_container(), root="/registry/")

    async def scenario() -> None:
        for params in (plain, rooted):
            driver = make_driver(params)
            await driver.put_content("/docker/registry/v2/repositories/x/_layers/link", b"l")
            await write_file(driver, "/docker/registry/v2/blobs/sha256/ab/abc/data", b"blob")
        assert await blob_names(plain) == [
            "docker/registry/v2/blobs/sha256/ab/abc/data",
            "docker/registry/v2/repositories/x/_layers/link",
        ]
        assert await blob_names(rooted) == [
            "registry/docker/registry/v2/blobs/sha256/ab/abc/data",
            "registry/docker/registry/v2/repositories/x/_layers/link",
        ]
        assert await make_driver(rooted).inner.list("/") == ["/docker"]

    run(scenario())


# -- uploads across requests and instances ----------------------------------------------


def test_close_commits_the_blocks_and_another_instance_continues(params: dict[str, Any]) -> None:
    first, second = os.urandom(3 * BLOCK + 1000), os.urandom(2 * BLOCK + 7)

    async def scenario() -> None:
        a, b = make_driver(params), make_driver(params)  # two instances, two clients
        writer = await a.writer("/up/data")
        await writer.write(first)
        await writer.close()
        assert (await b.stat("/up/data")).size == len(first)
        assert await read_all(b.reader("/up/data")) == first  # readable before the commit
        committed, uncommitted = await block_list(params, "/up/data")
        assert committed == [BLOCK, BLOCK, BLOCK, 1000] and uncommitted == []
        writer = await b.writer("/up/data", len(first))  # nothing read back, just appended
        await writer.write(second)
        await writer.commit()
        assert (await a.stat("/up/data")).size == len(first) + len(second)
        committed, _ = await block_list(params, "/up/data")
        assert committed[:4] == [BLOCK, BLOCK, BLOCK, 1000]
        await a.move("/up/data", "/blobs/data")
        assert await b.get_content("/blobs/data") == first + second

    run(scenario())


def test_staged_blocks_of_a_crashed_request_stay_invisible(params: dict[str, Any]) -> None:
    async def scenario() -> None:
        a = make_driver(params)
        await write_file(a, "/up/data", b"acknowledged")
        writer = await a.writer("/up/data", 12)
        await writer.write(os.urandom(3 * BLOCK))  # blocks staged, never committed: a crash
        await asyncio.sleep(0.5)  # the last block is staged behind the caller's back
        assert (await a.stat("/up/data")).size == 12
        _, uncommitted = await block_list(params, "/up/data")
        assert uncommitted  # staged on the server
        b = make_driver(params)
        writer = await b.writer("/up/data", 12)
        await writer.write(b"+more")
        await writer.close()
        assert await b.get_content("/up/data") == b"acknowledged+more"
        assert (await block_list(params, "/up/data"))[1] == []  # dropped by the commit

    run(scenario())


def test_cut_back_to_the_acknowledged_offset(params: dict[str, Any]) -> None:
    """A failed chunk's bytes are cut off as the upload layer does: reopen at the offset."""
    data = os.urandom(5 * BLOCK)
    ack = 2 * BLOCK + 12345  # inside the third block

    async def scenario() -> None:
        a, b = make_driver(params), make_driver(params)
        await write_file(a, "/up/data", data[:ack])
        writer = await a.writer("/up/data", ack)
        await writer.write(data[ack:])  # the chunk fails after this...
        await writer.close()  # ...and the upload layer closes the writer
        assert (await b.stat("/up/data")).size == len(data)
        await (await b.writer("/up/data", ack)).close()  # then cuts back to the offset
        assert (await a.stat("/up/data")).size == ack
        assert await a.get_content("/up/data") == data[:ack]
        committed, _ = await block_list(params, "/up/data")
        assert sum(committed) == ack and committed[:2] == [BLOCK, BLOCK]
        size = await write_file(b, "/up/data", data[ack:], offset=ack)
        assert size == len(data)
        assert await a.get_content("/up/data") == data

    run(scenario())


def test_cut_at_a_block_boundary_and_to_zero(params: dict[str, Any]) -> None:
    data = os.urandom(3 * BLOCK)

    async def scenario() -> None:
        d = make_driver(params)
        await write_file(d, "/f", data)
        await (await d.writer("/f", BLOCK)).close()
        assert await d.get_content("/f") == data[:BLOCK]
        assert (await block_list(params, "/f"))[0] == [BLOCK]
        await (await d.writer("/f", 0)).close()
        assert (await d.stat("/f")).size == 0

    run(scenario())


def test_tiny_chunks_are_merged_past_the_threshold(params: dict[str, Any]) -> None:
    """Many tiny PATCHes must not run into Azure's 50,000 committed blocks."""
    inner = AzureDriver(AzureParameters(params), block_size=BLOCK)
    inner.COALESCE_AFTER = 3
    driver = CheckedDriver(inner)
    pieces = [os.urandom(100 + i) for i in range(10)]

    async def scenario() -> None:
        offset = 0
        for piece in pieces:
            writer = await driver.writer("/up/data", offset)
            await writer.write(piece)
            await writer.close()
            offset += len(piece)
        assert await driver.get_content("/up/data") == b"".join(pieces)
        committed, _ = await block_list(params, "/up/data")
        assert len(committed) <= 3 and sum(committed) == offset

    run(scenario())


def test_move_replaces_and_removes_the_source(params: dict[str, Any]) -> None:
    big = os.urandom(3 * MiB + 5)

    async def scenario() -> None:
        d = make_driver(params)
        await write_file(d, "/_uploads/u/data", big)
        await d.put_content("/blobs/x/data", b"old")
        await d.move("/_uploads/u/data", "/blobs/x/data")
        assert await d.get_content("/blobs/x/data") == big
        assert await d.inner.list("/") == ["/blobs"]

    run(scenario())


# -- redirects --------------------------------------------------------------------------


def test_redirect_is_a_working_read_only_sas_url(params: dict[str, Any]) -> None:
    data = os.urandom(100 * KiB)

    async def scenario() -> tuple[str | None, str | None, str | None]:
        d = make_driver(params)
        await d.put_content("/blobs/b/data", data)
        return (
            await d.redirect_url("/blobs/b/data", "GET"),
            await d.redirect_url("/blobs/b/data", "PUT"),
            await make_driver(params, redirect=False).redirect_url("/blobs/b/data", "GET"),
        )

    url, put_url, disabled = run(scenario())
    assert url is not None and "sig=" in url and "sp=r" in url
    assert url.startswith(params["serviceurl"])
    assert put_url is None and disabled is None
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200 and response.content == data
    # Read-only: the same signature cannot write.
    assert httpx.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"},
                     timeout=30).status_code == 403


def test_local_path_is_none(driver: CheckedDriver, tmp_path: Path) -> None:
    assert driver.local_path("/anything") is None


# -- upload purging ---------------------------------------------------------------------


def test_purging_removes_committed_and_uncommitted_upload_data(params: dict[str, Any]) -> None:
    """An abandoned upload goes whole, even blocks staged by a request that died first."""
    from dockyard.maintenance.purge import purge_uploads
    from dockyard.storage import paths

    old, fresh = "old-upload", "fresh-upload"

    async def scenario() -> tuple[int, list[str]]:
        d = make_driver(params)
        for upload, started in ((old, "2020-01-01T00:00:00Z"), (fresh, "2099-01-01T00:00:00Z")):
            await d.put_content(paths.upload_startedat_path("repo", upload), started.encode())
            await write_file(d, paths.upload_path("repo", upload) + "/data", b"acknowledged")
        # A request that staged blocks and died before its first commit.
        crashed = "crashed-upload"
        await d.put_content(paths.upload_startedat_path("repo", crashed), b"2020-01-01T00:00:00Z")
        writer = await d.writer(paths.upload_path("repo", crashed) + "/data")
        await writer.write(os.urandom(2 * BLOCK))
        await asyncio.sleep(0.5)  # the last block is staged behind the caller's back
        summary = await purge_uploads(d, older_than=3600)
        return summary.deleted, await blob_names(params, uncommitted=True)

    deleted, left = run(scenario())
    assert deleted == 2
    assert [n for n in left if "/_uploads/" in n] == [
        f"{params['rootdirectory']}/docker/registry/v2/repositories/repo/_uploads/{fresh}/data",
        f"{params['rootdirectory']}/docker/registry/v2/repositories/repo/_uploads/{fresh}/startedat",
    ]


def test_continues_an_upload_distribution_began_as_an_append_blob(params: dict[str, Any]) -> None:
    """distribution writes upload data as an append blob; dockyard appends to it."""
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob.aio import ContainerClient

    from dockyard.storage.drivers.base import StorageError

    head, tail = os.urandom(5 * MiB + 3), os.urandom(4 * MiB + 9)
    name = f"{params['rootdirectory']}/up/data"

    async def scenario() -> str:
        async with ContainerClient(
            params["serviceurl"], params["container"],
            credential=AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
        ) as container:
            await container.create_container()
            blob = container.get_blob_client(name)
            await blob.create_append_blob()
            await blob.append_block(head[: 4 * MiB])
            await blob.append_block(head[4 * MiB :])
            d = make_driver(params)
            assert (await d.stat("/up/data")).size == len(head)
            with pytest.raises(StorageError, match="append blob"):
                await d.writer("/up/data", 10)  # cannot be cut back
            size = await write_file(d, "/up/data", tail, offset=len(head))
            assert size == len(head) + len(tail)
            assert await d.get_content("/up/data") == head + tail
            await d.move("/up/data", "/blobs/data")
            assert await d.get_content("/blobs/data") == head + tail
            return "ok"

    assert run(scenario()) == "ok"
