"""The gcs driver against fake-gcs-server: the driver contract, and its upload parts.

The contract tests are those of tests/unit/test_driver_contract.py, run here with this module's
``driver`` fixture (each test gets a fresh bucket, a root directory in it, and a chunk
size of 256 KiB -- the smallest GCS allows -- so small files already span parts).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support import azure_gcs as fixtures
from tests.support.azure_gcs import (
    FakeGCSServer,
    gcs_params,
    service_account_key,
)
from tests.unit.test_driver_contract import contract, read_all, run, write_file

from dockyard.storage.drivers.base import CheckedDriver, StorageDriver
from dockyard.storage.drivers.factory import DriverConfigError, create_driver
from dockyard.storage.drivers.gcs import (
    PARTS_SUFFIX,
    SESSION_CONTENT_TYPE,
    GCSDriver,
    GCSParameters,
    sign_url_v4,
)

KiB = 1 << 10
MiB = 1 << 20
CHUNK = 256 * KiB

fake_gcs = fixtures.fake_gcs  # the session's fake-gcs-server

globals().update(contract())


def make_driver(params: dict[str, Any], **kwargs: Any) -> CheckedDriver:
    return CheckedDriver(GCSDriver(GCSParameters({**params, "chunksize": CHUNK}), **kwargs))


@pytest.fixture
def params(fake_gcs: FakeGCSServer) -> dict[str, Any]:
    return gcs_params(fake_gcs, fake_gcs.create_bucket(), root=f"root-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def driver(params: dict[str, Any]) -> CheckedDriver:
    return make_driver(params)


def objects(server: FakeGCSServer, bucket: str) -> dict[str, dict[str, Any]]:
    """Every object of the bucket by name, as the JSON API lists it."""
    out: dict[str, dict[str, Any]] = {}
    token = ""
    while True:
        response = httpx.get(
            f"{server.url}/storage/v1/b/{bucket}/o",
            params={"pageToken": token} if token else {}, timeout=10,
        )
        response.raise_for_status()
        page = response.json()
        out.update({item["name"]: item for item in page.get("items", [])})
        token = page.get("nextPageToken", "")
        if not token:
            return out


def test_satisfies_the_protocol(driver: CheckedDriver) -> None:
    assert isinstance(driver.inner, StorageDriver)
    assert driver.name == "gcs"


# -- parameters -------------------------------------------------------------------------


def test_parameters_as_distribution_reads_them(tmp_path: Path) -> None:
    p = GCSParameters({"bucket": "b"}, environ={})
    assert (p.bucket, p.root_prefix, p.chunk_size, p.endpoint) == ("b", "", 16 * MiB, "")
    assert p.signing_key is None
    key = service_account_key(tmp_path / "key.json")
    p = GCSParameters(
        {"bucket": "b", "rootdirectory": "/x/y/", "chunksize": "5242880", "keyfile": str(key)},
        environ={},
    )
    assert (p.root_prefix, p.chunk_size) == ("x/y/", 5 * MiB)
    assert p.signing_key is not None and p.signing_key[0].startswith("dockyard-test@")
    p = GCSParameters(
        {"bucket": "b", "credentials": json.loads(key.read_text())}, environ={}
    )
    assert p.signing_key is not None
    # The emulator variable of Google's clients (and distribution's) is honoured.
    p = GCSParameters({"bucket": "b"}, environ={"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"})
    assert p.endpoint == "http://127.0.0.1:4443"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "bucket: missing"),
        ({"bucket": "b", "chunksize": 1000}, "chunksize: .*multiple of 262144"),
        ({"bucket": "b", "chunksize": "lots"}, "chunksize: expected an integer"),
        ({"bucket": "b", "keyfile": "/nonexistent/key.json"}, "keyfile"),
        ({"bucket": "b", "credentials": "nope"}, "credentials"),
        ({"bucket": "b", "maxconcurrency": 0}, "maxconcurrency: 0 is out of range"),
        ({"bucket": "b", "bogus": 1}, "bogus: unsupported parameter"),
        ({"bucket": "b", "endpoint": "ftp://x"}, "endpoint: .*not an http"),
    ],
)
def test_bad_parameters_stop_startup(params: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message) as caught:
        create_driver("gcs", params)
    assert str(caught.value).startswith("storage.gcs.")


def test_factory_builds_the_gcs_driver() -> None:
    driver = create_driver("gcs", {"bucket": "b", "endpoint": "http://127.0.0.1:9"},
                           redirect=False)
    assert isinstance(driver, CheckedDriver) and isinstance(driver.inner, GCSDriver)
    assert driver.inner.redirect is False


# -- layout -----------------------------------------------------------------------------


def test_object_names_are_distributions(fake_gcs: FakeGCSServer) -> None:
    bucket = fake_gcs.create_bucket()
    plain = gcs_params(fake_gcs, bucket)
    rooted = gcs_params(fake_gcs, bucket, root="/registry/")

    async def scenario() -> None:
        for params in (plain, rooted):
            driver = make_driver(params)
            await driver.put_content("/docker/registry/v2/repositories/x/_layers/link", b"l")
            await write_file(driver, "/docker/registry/v2/blobs/sha256/ab/abc/data", b"blob")
        assert await make_driver(rooted).inner.list("/") == ["/docker"]

    run(scenario())
    assert sorted(objects(fake_gcs, bucket)) == [
        "docker/registry/v2/blobs/sha256/ab/abc/data",
        "docker/registry/v2/repositories/x/_layers/link",
        "registry/docker/registry/v2/blobs/sha256/ab/abc/data",
        "registry/docker/registry/v2/repositories/x/_layers/link",
    ]


# -- uploads across requests and instances ----------------------------------------------


def test_close_saves_a_part_list_that_another_instance_continues(
    fake_gcs: FakeGCSServer, params: dict[str, Any]
) -> None:
    first, second = os.urandom(3 * CHUNK + 1000), os.urandom(2 * CHUNK + 7)
    key = f"{params['rootdirectory']}/up/data"

    async def scenario() -> None:
        a, b = make_driver(params), make_driver(params)  # two instances, two clients
        writer = await a.writer("/up/data")
        await writer.write(first)
        await writer.close()
        assert (await b.stat("/up/data")).size == len(first)
        assert await read_all(b.reader("/up/data")) == first  # readable before the commit
        assert await read_all(b.reader("/up/data", CHUNK + 5)) == first[CHUNK + 5 :]
        assert await b.list("/up") == ["/up/data"]  # the parts are hidden
        found = objects(fake_gcs, params["bucket"])
        assert found[key]["contentType"] == SESSION_CONTENT_TYPE
        assert sorted(int(o["size"]) for n, o in found.items() if n.startswith(key + "~")) == [
            1000, CHUNK, CHUNK, CHUNK
        ]
        writer = await b.writer("/up/data", len(first))
        await writer.write(second)
        await writer.commit()
        assert (await a.stat("/up/data")).size == len(first) + len(second)
        await a.move("/up/data", "/blobs/data")
        assert await b.get_content("/blobs/data") == first + second

    run(scenario())
    # Composed into one plain object; every part is gone.
    found = objects(fake_gcs, params["bucket"])
    assert sorted(found) == [f"{params['rootdirectory']}/blobs/data"]
    assert found[f"{params['rootdirectory']}/blobs/data"]["contentType"] != SESSION_CONTENT_TYPE


def test_parts_of_a_crashed_request_stay_invisible(
    fake_gcs: FakeGCSServer, params: dict[str, Any]
) -> None:
    async def scenario() -> None:
        a = make_driver(params)
        writer = await a.writer("/up/data")
        await writer.write(b"acknowledged")
        await writer.close()
        writer = await a.writer("/up/data", 12)
        await writer.write(os.urandom(3 * CHUNK))  # parts uploaded, never listed: a crash
        await asyncio.sleep(0.5)  # the last part uploads behind the caller's back
        assert (await a.stat("/up/data")).size == 12
        b = make_driver(params)
        writer = await b.writer("/up/data", 12)
        await writer.write(b"+more")
        await writer.close()
        assert await b.get_content("/up/data") == b"acknowledged+more"
        await b.delete("/up")  # the upload's directory, stray parts included

    run(scenario())
    assert objects(fake_gcs, params["bucket"]) == {}


def test_cut_back_to_the_acknowledged_offset(params: dict[str, Any]) -> None:
    """A failed chunk's bytes are cut off as the upload layer does: reopen at the offset."""
    data = os.urandom(5 * CHUNK)
    ack = 2 * CHUNK + 12345  # inside the third part

    async def scenario() -> None:
        a, b = make_driver(params), make_driver(params)
        writer = await a.writer("/up/data")
        await writer.write(data[:ack])
        await writer.close()
        writer = await a.writer("/up/data", ack)
        await writer.write(data[ack:])  # the chunk fails after this...
        await writer.close()  # ...and the upload layer closes the writer
        assert (await b.stat("/up/data")).size == len(data)
        await (await b.writer("/up/data", ack)).close()  # then cuts back to the offset
        assert (await a.stat("/up/data")).size == ack
        assert await a.get_content("/up/data") == data[:ack]
        writer = await b.writer("/up/data", ack)
        await writer.write(data[ack:])
        await writer.commit()
        assert await a.get_content("/up/data") == data

    run(scenario())


def test_more_parts_than_one_compose_takes(params: dict[str, Any]) -> None:
    """Compose takes 32 sources: 70 parts are composed as a tree."""
    pieces = [os.urandom(1000 + i) for i in range(70)]

    async def scenario() -> None:
        d = make_driver(params)
        offset = 0
        for piece in pieces:  # one part per "PATCH"
            writer = await d.writer("/up/data", offset)
            await writer.write(piece)
            await writer.close()
            offset += len(piece)
        writer = await d.writer("/up/data", offset)
        await writer.commit()
        assert await d.get_content("/up/data") == b"".join(pieces)

    run(scenario())


def test_empty_upload_commits_an_empty_object(params: dict[str, Any]) -> None:
    async def scenario() -> None:
        d = make_driver(params)
        await (await d.writer("/up/data")).close()
        assert (await d.stat("/up/data")).size == 0
        await (await d.writer("/up/data", 0)).commit()
        assert await d.get_content("/up/data") == b""

    run(scenario())


# -- redirects --------------------------------------------------------------------------


def test_signed_url_matches_gcloud_aio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our V4 signature equals the one gcloud-aio-storage computes for the same instant."""
    import datetime as datetime_module

    from gcloud.aio.auth import Token
    from gcloud.aio.storage import blob as blob_module
    from gcloud.aio.storage.blob import Blob
    from gcloud.aio.storage.bucket import Bucket

    key_path = service_account_key(tmp_path / "key.json")
    key = json.loads(key_path.read_text())
    instant = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    class FrozenDatetime(datetime_module.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
            return cls.fromtimestamp(instant.timestamp(), tz)

    monkeypatch.setattr(blob_module.datetime, "datetime", FrozenDatetime)
    monkeypatch.setattr(blob_module, "HOST", "storage.googleapis.com")
    name = "docker/registry/v2/blobs/sha256/ab/ab~c d/data"

    async def theirs() -> str:
        token = Token(service_file=str(key_path))
        bucket = Bucket(None, "my-bucket")  # type: ignore[arg-type]
        url = await Blob(bucket, name, {"size": 0}).get_signed_url(1200, token=token)
        await token.close()
        return url

    expected = run(theirs())
    ours = sign_url_v4(
        host_url="https://storage.googleapis.com", bucket="my-bucket", name=name,
        client_email=key["client_email"], private_key=key["private_key"], now=instant,
    )
    assert ours == expected


def test_redirect_needs_a_key_and_serves_the_object(
    fake_gcs: FakeGCSServer, params: dict[str, Any], tmp_path: Path
) -> None:
    data = os.urandom(100 * KiB)
    keyed = {**params, "keyfile": str(service_account_key(tmp_path / "key.json"))}

    async def scenario() -> tuple[str | None, ...]:
        await make_driver(params).put_content("/blobs/b/data", data)
        return (
            await make_driver(params).redirect_url("/blobs/b/data", "GET"),
            await make_driver(keyed).redirect_url("/blobs/b/data", "GET"),
            await make_driver(keyed).redirect_url("/blobs/b/data", "PUT"),
            await make_driver(keyed, redirect=False).redirect_url("/blobs/b/data", "GET"),
        )

    without_key, url, put_url, disabled = run(scenario())
    assert without_key is None and put_url is None and disabled is None
    assert url is not None and "X-Goog-Signature=" in url
    assert url.startswith(f"{fake_gcs.url}/{params['bucket']}/{params['rootdirectory']}/")
    # The emulator does not check signatures, but it serves the URL's object.
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200 and response.content == data


def test_local_path_is_none(driver: CheckedDriver) -> None:
    assert driver.local_path("/anything") is None
    assert PARTS_SUFFIX.startswith("~")
    assert time.time() > 0


# -- upload purging ---------------------------------------------------------------------


def test_purging_removes_the_part_lists_and_every_part(
    fake_gcs: FakeGCSServer, params: dict[str, Any]
) -> None:
    """An abandoned upload goes whole, parts of a request that died first included."""
    from dockyard.maintenance.purge import purge_uploads
    from dockyard.storage import paths

    old, fresh, crashed = "old-upload", "fresh-upload", "crashed-upload"

    async def scenario() -> int:
        d = make_driver(params)
        for upload, started in ((old, "2020-01-01T00:00:00Z"), (fresh, "2099-01-01T00:00:00Z"),
                                (crashed, "2020-01-01T00:00:00Z")):
            await d.put_content(paths.upload_startedat_path("repo", upload), started.encode())
        for upload in (old, fresh):
            writer = await d.writer(paths.upload_path("repo", upload) + "/data")
            await writer.write(os.urandom(CHUNK + 5))
            await writer.close()
        writer = await d.writer(paths.upload_path("repo", crashed) + "/data")
        await writer.write(os.urandom(2 * CHUNK))  # parts uploaded, no part list: a crash
        await asyncio.sleep(0.5)  # the last part uploads behind the caller's back
        summary = await purge_uploads(d, older_than=3600)
        return summary.deleted

    assert run(scenario()) == 2
    left = sorted(objects(fake_gcs, params["bucket"]))
    prefix = f"{params['rootdirectory']}/docker/registry/v2/repositories/repo/_uploads/"
    assert all(name.startswith(prefix + fresh + "/") for name in left), left
    assert len(left) == 4  # startedat, the part list and its two parts
