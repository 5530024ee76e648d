"""The container below the Azure driver: client, blob names, errors, SAS and ``delete``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobClient, ContainerClient

from dockyard.storage.drivers.azure._params import AzureParameters
from dockyard.storage.drivers.base import PathNotFound, StorageError

__all__ = ["BLOCK_SIZE", "NOT_FOUND_CODES", "AzureContainer"]

BLOCK_SIZE = 4 << 20
GET_SIZE = 4 << 20  # bytes per ranged GET (a file up to this size is read in one GET)
_DELETE_CONCURRENCY = 16
NOT_FOUND_CODES = frozenset(
    {"BlobNotFound", "ContainerNotFound", "ResourceNotFound", "CannotVerifyCopySource"}
)


class AzureContainer:
    """One container under a root directory; the driver and its writers are built on it."""

    name = "azure"
    #: Blocks after which a short last block is merged into the next one.
    COALESCE_AFTER = 1000

    def __init__(
        self, params: AzureParameters, block_size: int = BLOCK_SIZE, *, redirect: bool = True
    ) -> None:
        self.params = params
        self.block_size = block_size
        self.redirect = redirect
        self._client: ContainerClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Lock | None = None


    async def _container(self) -> ContainerClient:
        """The client of the running event loop, built (and the container made) once."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        if self._loop is not loop:
            self._client, self._loop, self._ready = None, loop, asyncio.Lock()
        assert self._ready is not None
        async with self._ready:
            if self._client is None:
                client = ContainerClient(
                    self.params.service_url,
                    self.params.container,
                    credential=AzureNamedKeyCredential(
                        self.params.account_name, self.params.account_key
                    ),
                    max_single_get_size=GET_SIZE,
                    max_chunk_get_size=GET_SIZE,
                )
                with self._errors("/"), contextlib.suppress(ResourceExistsError):
                    await client.create_container()
                self._client = client
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def _name(self, path: str) -> str:
        return (self.params.root_prefix + path.lstrip("/")).rstrip("/")

    def _prefix(self, path: str) -> str:
        name = self._name(path)
        return f"{name}/" if name else ""

    def _path(self, name: str) -> str:
        return "/" + name[len(self.params.root_prefix) :].rstrip("/")

    async def _blob(self, path: str) -> BlobClient:
        return (await self._container()).get_blob_client(self._name(path))

    @contextlib.contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        """SDK and transport errors as StorageError; "not found" as PathNotFound."""
        try:
            yield
        except ResourceNotFoundError as exc:
            raise PathNotFound(path, self.name) from exc
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) in NOT_FOUND_CODES:
                raise PathNotFound(path, self.name) from exc
            raise StorageError(f"{_describe(exc)} ({path})", self.name) from exc
        except (AzureError, OSError) as exc:
            raise StorageError(f"{_describe(exc)} ({path})", self.name) from exc

    def _sas(self, name: str, expiry: timedelta) -> str:
        start = datetime.now(UTC) - timedelta(minutes=5)  # clock skew
        return generate_blob_sas(
            self.params.account_name,
            self.params.container,
            name,
            account_key=self.params.account_key,
            permission=BlobSasPermissions(read=True),
            start=start,
            expiry=start + expiry,
        )

    async def delete(self, path: str) -> None:
        container = await self._container()
        name = self._name(path)
        if name:
            with self._errors(path):
                try:
                    await container.get_blob_client(name).delete_blob()
                    return
                except ResourceNotFoundError:
                    pass
        names: list[str] = []
        with self._errors(path):
            # Uncommitted blobs too: blocks staged by a request that died before its
            # first commit (upload purging must not leave them for Azure's 7 days).
            async for item in container.list_blobs(
                name_starts_with=self._prefix(path), include=["uncommittedblobs"]
            ):
                names.append(item.name)
        if not names:
            raise PathNotFound(path, self.name)
        limit = asyncio.Semaphore(_DELETE_CONCURRENCY)

        async def remove(blob_name: str) -> None:
            async with limit:
                with self._errors(path), contextlib.suppress(ResourceNotFoundError):
                    await container.get_blob_client(blob_name).delete_blob()

        await asyncio.gather(*(remove(n) for n in names))


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{code}: {message}" if code else message
