"""An upload's status while another request appends to it on an object store.

S3's ``stat`` of a file being written is several requests, and the file changes form
as it grows (multipart upload -> object -> new multipart upload), so one look can see
neither form. A status must not take that for "the data is gone" (a 404 that makes
clients give up an upload in progress): that is what the racing tests hit once in a
while. The driver below misses once, as such a look does; the real race runs in
``tests/integration/test_upload_races.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dockyard.errors import BlobUploadUnknown
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage.drivers.base import CheckedDriver, FileInfo, PathNotFound
from dockyard.storage.drivers.inmemory import InMemoryDriver
from dockyard.storage.drivers.middleware import ForwardingDriver


class _OneMissedLook(ForwardingDriver):
    """``stat`` of an upload's data misses once after :meth:`blink`."""

    def __init__(self) -> None:
        super().__init__(InMemoryDriver())
        self.pending_misses = 0

    async def stat(self, path: str) -> FileInfo:
        if path.endswith("/data") and "/_uploads/" in path and self.pending_misses:
            self.pending_misses -= 1
            raise PathNotFound(path, self.name)
        return await self.inner.stat(path)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_status_survives_one_missed_look_at_the_data() -> None:
    async def run() -> None:
        driver = _OneMissedLook()
        repo = Namespace(CheckedDriver(driver), RegistryOptions()).repository("r")
        upload = await repo.start_upload()
        status = await repo.write_upload(upload.upload_id, _body(b"x" * 1000), claimed=0)
        driver.pending_misses = 1
        assert (await repo.upload_status(upload.upload_id)).offset == status.offset == 1000
        assert driver.pending_misses == 0
        # Missing twice in a row: the data really is gone (a final PUT published it).
        driver.pending_misses = 2
        with pytest.raises(BlobUploadUnknown):
            await repo.upload_status(upload.upload_id)

    asyncio.run(run())
