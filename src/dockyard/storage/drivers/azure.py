"""Azure Blob Storage driver (``storage.azure``), on ``azure-storage-blob``'s asyncio client.

Parameters (distribution's keys)
    ``accountname``, ``accountkey``, ``container`` (required); ``realm`` (default
    ``core.windows.net``: the service is ``https://<accountname>.blob.<realm>``) or
    ``serviceurl`` (any endpoint, e.g. ``http://127.0.0.1:10000/devstoreaccount1`` for
    Azurite); ``connectionstring`` instead of the account name and key;
    ``credentials`` with ``type: shared_key`` (other types need Azure AD and are
    refused at start); ``rootdirectory`` (a prefix inside the container);
    ``copy_status_poll_max_retry`` and ``copy_status_poll_delay`` (how long ``move``
    waits for a server-side copy). The container is created if it does not exist,
    as distribution 2.8 does.

Layout
    Path ``/a/b`` is blob ``<rootdirectory>/a/b`` (``a/b`` without a root
    directory), exactly as distribution names its blobs, so both share a container.
    Directories are prefixes.

Uploads across requests and instances
    Upload data is a *block blob*. ``write`` stages blocks of up to 4 MiB (Put
    Block) as the bytes stream in -- one block in flight while the next fills, so
    memory stays at two blocks. ``close`` (the end of every PATCH) commits the
    block list (Put Block List): the blob then holds exactly the bytes written so
    far, ``stat`` reports that size and any instance continues it. Put Block List
    is atomic, so a reader sees the previous or the new list, never a torn one;
    blocks a crashed request staged but never committed are invisible and dropped
    by Azure at the next commit (or after 7 days). A request that continues at
    ``offset`` reads the committed block list (Get Block List: ids and sizes),
    keeps it, stages new blocks and commits ``old + new``: nothing already stored
    is read back or copied. ``writer(path, offset)`` with ``offset`` below the
    size cuts the list at ``offset``: whole blocks past it are dropped, the one
    block that straddles it is re-staged with its head only (at most one block is
    read back). ``commit`` commits like ``close``; the blob is then complete and
    ``move`` copies it server-side (Copy Blob from a SAS URL of the source, polled
    until done) and deletes the source.

    Why not append blobs, as distribution does: an append blob cannot be cut
    back to an acknowledged offset, and a committed block list is the same
    durable, visible, resumable state with one round trip per PATCH. An upload
    that distribution began (an append blob; the ``_state`` tokens are
    interchangeable) is continued here with Append Block, as distribution would;
    it cannot be cut back. The other way round, distribution 2.8 cannot append to
    an upload dockyard began: do not let one upload cross between the two.

    A committed block blob may have at most 50,000 blocks. Each PATCH adds at least
    one; when a blob already has ``COALESCE_AFTER`` blocks and its last block is
    short, the next writer reads that short block back and restages it merged with
    new data, so clients sending tiny chunks still reach the size limit of 4 MiB
    blocks (about 195 GiB).

Redirects
    Unless ``storage.redirect.disable`` is set, ``redirect_url`` answers GET and
    HEAD with the blob URL and a read-only SAS valid for 20 minutes (distribution's
    ``URLFor``), signed locally with the account key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.objectstore import PartWriter, PrefixTree, check_parameters

if TYPE_CHECKING:  # the SDK is imported only when the driver is built
    from azure.storage.blob.aio import BlobClient, ContainerClient

__all__ = ["AzureDriver", "AzureParameters"]

DEFAULT_REALM = "core.windows.net"
BLOCK_SIZE = 4 << 20
READ_CHUNK = 1 << 20
GET_SIZE = 4 << 20  # bytes per ranged GET (a file up to this size is read in one GET)
APPEND_SIZE = 4 << 20  # the most one Append Block takes
MAX_BLOCKS = 50_000
REDIRECT_EXPIRY = timedelta(minutes=20)
COPY_SOURCE_EXPIRY = timedelta(hours=1)
_DELETE_CONCURRENCY = 16
_KNOWN = frozenset(
    {
        "accountname",
        "accountkey",
        "container",
        "realm",
        "serviceurl",
        "connectionstring",
        "credentials",
        "rootdirectory",
        "copy_status_poll_max_retry",
        "copy_status_poll_delay",
    }
)
_NOT_FOUND_CODES = frozenset(
    {"BlobNotFound", "ContainerNotFound", "ResourceNotFound", "CannotVerifyCopySource"}
)


def _config_error(message: str) -> Exception:
    from dockyard.storage.drivers.factory import DriverConfigError

    return DriverConfigError(f"storage.azure: {message}")


class AzureParameters:
    """``storage.azure`` validated; raises ``DriverConfigError`` naming the bad key."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        check_parameters(params, _KNOWN, _config_error)
        text = {k: "" if v is None else str(v) for k, v in params.items() if k != "credentials"}
        self.account_name = text.get("accountname", "")
        self.account_key = text.get("accountkey", "")
        conn = text.get("connectionstring", "")
        endpoint = ""
        if conn:
            fields = dict(
                part.split("=", 1) for part in conn.split(";") if "=" in part
            )
            self.account_name = self.account_name or fields.get("AccountName", "")
            self.account_key = self.account_key or fields.get("AccountKey", "")
            endpoint = fields.get("BlobEndpoint", "")
            if not endpoint and self.account_name:
                protocol = fields.get("DefaultEndpointsProtocol", "https")
                suffix = fields.get("EndpointSuffix", DEFAULT_REALM)
                endpoint = f"{protocol}://{self.account_name}.blob.{suffix}"
        credentials = params.get("credentials")
        if credentials is not None:
            if not isinstance(credentials, Mapping):
                raise _config_error("credentials: expected a mapping with a 'type'")
            kind = str(credentials.get("type") or "")
            if kind != "shared_key":
                raise _config_error(
                    f"credentials.type {kind!r} is not supported (only shared_key: "
                    "accountname and accountkey)"
                )
            self.account_name = str(credentials.get("accountname") or self.account_name)
            self.account_key = str(credentials.get("accountkey") or self.account_key)
        self.container = text.get("container", "")
        if not self.account_name:
            raise _config_error("accountname is required")
        if not self.account_key:
            raise _config_error("accountkey is required (shared key authentication)")
        if not self.container:
            raise _config_error("container is required")
        try:
            base64.b64decode(self.account_key, validate=True)
        except ValueError:
            raise _config_error("accountkey is not valid base64") from None
        realm = text.get("realm") or DEFAULT_REALM
        self.service_url = (
            text.get("serviceurl") or endpoint or f"https://{self.account_name}.blob.{realm}"
        ).rstrip("/")
        scheme = urlsplit(self.service_url).scheme
        if scheme not in ("http", "https") or not urlsplit(self.service_url).netloc:
            raise _config_error(f"serviceurl {self.service_url!r} is not an http(s) URL")
        root = text.get("rootdirectory", "").strip("/")
        self.root_prefix = f"{root}/" if root else ""
        try:
            self.copy_poll_max_retry = int(text.get("copy_status_poll_max_retry") or 30)
        except ValueError:
            raise _config_error("copy_status_poll_max_retry must be an integer") from None
        from dockyard.config import parse_duration

        try:
            self.copy_poll_delay = parse_duration(text.get("copy_status_poll_delay") or "100ms")
        except ValueError as exc:
            raise _config_error(f"copy_status_poll_delay: {exc}") from None


class AzureDriver(PrefixTree):
    """Blobs in one container; see the module docstring."""

    name = "azure"
    #: Blocks after which a short last block is merged into the next one.
    COALESCE_AFTER = 1000

    def __init__(
        self, params: AzureParameters, block_size: int = BLOCK_SIZE, *, redirect: bool = True
    ) -> None:
        try:
            import azure.storage.blob.aio  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise _config_error(
                "the azure driver needs the azure extra: pip install 'dockyard[azure]'"
            ) from exc
        self.params = params
        self.block_size = block_size
        self.redirect = redirect
        self._client: ContainerClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Lock | None = None

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> AzureDriver:
        """``storage.azure``; ``redirect`` is ``not storage.redirect.disable``."""
        return cls(AzureParameters(params), redirect=redirect)

    # -- plumbing ---------------------------------------------------------------------

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
                from azure.core.credentials import AzureNamedKeyCredential
                from azure.core.exceptions import ResourceExistsError
                from azure.storage.blob.aio import ContainerClient

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
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        try:
            yield
        except ResourceNotFoundError as exc:
            raise PathNotFound(path, self.name) from exc
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) in _NOT_FOUND_CODES:
                raise PathNotFound(path, self.name) from exc
            raise StorageError(f"{_describe(exc)} ({path})", self.name) from exc
        except (AzureError, OSError) as exc:
            raise StorageError(f"{_describe(exc)} ({path})", self.name) from exc

    def _sas(self, name: str, expiry: timedelta) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

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

    # -- the contract -----------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        from azure.core.exceptions import HttpResponseError

        blob = await self._blob(path)
        for attempt in range(5):
            with self._errors(path):
                try:
                    downloader = await blob.download_blob()
                    return bytes(await downloader.readall())
                except HttpResponseError as exc:
                    # Replaced between two ranges of one read: read the new version.
                    if exc.status_code != 412 or attempt == 4:
                        raise
        raise AssertionError("unreachable")

    async def put_content(self, path: str, data: bytes) -> None:
        from azure.core.exceptions import HttpResponseError

        blob = await self._blob(path)
        with self._errors(path):
            try:
                await blob.upload_blob(data, overwrite=True)
            except HttpResponseError as exc:
                # An append blob from an old distribution cannot be overwritten by
                # Put Blob: replace it (as distribution does).
                if getattr(exc, "error_code", None) != "InvalidBlobType":
                    raise
                await blob.delete_blob()
                await blob.upload_blob(data, overwrite=True)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        from azure.core.exceptions import HttpResponseError

        blob = await self._blob(path)
        with self._errors(path):
            try:
                downloader = await blob.download_blob(offset=offset or None)
            except HttpResponseError as exc:
                if exc.status_code != 416:
                    raise
                size = (await blob.get_blob_properties()).size
                if offset != size:
                    raise InvalidOffset(path, offset, self.name) from None
                return
        chunks = downloader.chunks()
        while True:
            with self._errors(path):
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
            view = memoryview(chunk)
            for start in range(0, len(view), READ_CHUNK):
                yield bytes(view[start : start + READ_CHUNK])

    async def writer(self, path: str, offset: int = 0) -> _BlockWriter | _AppendWriter:
        blob = await self._blob(path)
        blocks: list[tuple[str, int]] = []
        changed = True  # writer(path, 0) replaces the blob even if nothing is written
        if offset:
            with self._errors(path):
                try:
                    blocks, changed = await self._blocks_until(blob, path, offset)
                except _IsAppendBlob as found:
                    # An upload begun by distribution (which writes append blobs) and
                    # continued here: append to it as distribution would.
                    if found.size != offset:
                        raise StorageError(
                            f"{path} is an append blob of {found.size} bytes: it cannot be "
                            f"cut back to {offset}", self.name,
                        ) from None
                    return _AppendWriter(self, blob, path, offset)
        writer = _BlockWriter(self, blob, path, blocks, offset, dirty=changed)
        if len(blocks) >= self.COALESCE_AFTER and blocks[-1][1] < self.block_size:
            await writer.reopen_last_block()
        return writer

    async def _blocks_until(
        self, blob: BlobClient, path: str, offset: int
    ) -> tuple[list[tuple[str, int]], bool]:
        """The blocks holding bytes [0, offset), and whether that differs from the blob.

        The common case, a blob of our blocks that ends at ``offset``, costs one
        Get Block List and changes nothing.
        """
        from azure.core.exceptions import HttpResponseError

        try:
            committed, _ = await blob.get_block_list("committed")
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) in _NOT_FOUND_CODES or exc.status_code == 404:
                raise
            committed = []  # an append or page blob has no block list
        blocks = [(b.id, int(b.size)) for b in committed]
        total = sum(size for _, size in blocks)
        if not blocks or any(len(block_id) != _BLOCK_ID_LENGTH for block_id, _ in blocks):
            # Written by Put Blob (put_content), as an append blob or with foreign
            # block ids: restage its head as blocks of ours (rare; bounded memory).
            props = await blob.get_blob_properties()
            total = int(props.size)
            if total < offset:
                raise InvalidOffset(path, offset, self.name)
            if str(props.blob_type).lower().endswith("appendblob"):
                raise _IsAppendBlob(total)
            return await self._restage(blob, 0, offset), True
        if total < offset:
            raise InvalidOffset(path, offset, self.name)
        if total == offset:
            return blocks, False
        kept: list[tuple[str, int]] = []
        start = 0
        for block_id, size in blocks:
            if start >= offset:
                break
            if start + size <= offset:
                kept.append((block_id, size))
            else:  # the block that straddles offset: keep its head
                kept.extend(await self._restage(blob, start, offset))
                break
            start += size
        return kept, True

    async def _restage(self, blob: BlobClient, start: int, end: int) -> list[tuple[str, int]]:
        """Stage bytes [start, end) of the committed blob as new blocks."""
        out = []
        pos = start
        while pos < end:
            length = min(self.block_size, end - pos)
            data = await (await blob.download_blob(offset=pos, length=length)).readall()
            block_id = _block_id()
            await blob.stage_block(block_id, data, length=len(data))
            out.append((block_id, len(data)))
            pos += len(data)
        return out

    async def stat(self, path: str) -> FileInfo:
        from azure.core.exceptions import ResourceNotFoundError

        container = await self._container()
        name = self._name(path)
        if name:
            with self._errors(path):
                try:
                    props = await container.get_blob_client(name).get_blob_properties()
                except ResourceNotFoundError:
                    pass
                else:
                    return FileInfo(path, int(props.size), props.last_modified.timestamp(), False)
        with self._errors(path):
            async for _ in container.list_blobs(
                name_starts_with=self._prefix(path), results_per_page=1
            ):
                return FileInfo(path, 0, 0.0, True)
        raise PathNotFound(path, self.name)

    async def _children(self, path: str) -> AsyncIterator[FileInfo]:
        from azure.storage.blob import BlobProperties
        from azure.storage.blob.aio import BlobPrefix

        container = await self._container()
        with self._errors(path):
            async for item in container.walk_blobs(
                name_starts_with=self._prefix(path), delimiter="/"
            ):
                child = self._path(item.name)
                if isinstance(item, BlobPrefix):
                    yield FileInfo(child, 0, 0.0, True)
                elif isinstance(item, BlobProperties) and not item.name.endswith("/"):
                    mtime = item.last_modified.timestamp() if item.last_modified else 0.0
                    yield FileInfo(child, int(item.size or 0), mtime, False)

    async def move(self, source: str, dest: str) -> None:
        container = await self._container()
        src = container.get_blob_client(self._name(source))
        dst = container.get_blob_client(self._name(dest))
        url = f"{src.url}?{self._sas(src.blob_name, COPY_SOURCE_EXPIRY)}"
        with self._errors(source):
            result = await dst.start_copy_from_url(url)
        status = result.get("copy_status")
        delay = self.params.copy_poll_delay
        tries = 0
        while status == "pending":
            tries += 1
            if tries > self.params.copy_poll_max_retry:
                with contextlib.suppress(Exception):
                    await dst.abort_copy(str(result["copy_id"]))
                raise StorageError(f"copy of {source} to {dest} still pending; aborted", self.name)
            await asyncio.sleep(delay * tries)
            with self._errors(dest):
                props = await dst.get_blob_properties()
            status = props.copy.status
        if status != "success":
            raise StorageError(f"copy of {source} to {dest} ended {status!r}", self.name)
        with self._errors(source):
            await src.delete_blob()

    async def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

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

    async def redirect_url(self, path: str, method: str) -> str | None:
        if not self.redirect or method not in ("GET", "HEAD"):
            return None
        blob = await self._blob(path)
        return f"{blob.url}?{self._sas(blob.blob_name, REDIRECT_EXPIRY)}"

    def local_path(self, path: str) -> str | None:
        return None


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{code}: {message}" if code else message


_BLOCK_ID_LENGTH = len(base64.b64encode(uuid.uuid4().hex.encode()).decode())


def _block_id() -> str:
    """A unique block id; every id dockyard writes has the same length, as Azure wants."""
    return base64.b64encode(uuid.uuid4().hex.encode()).decode()


class _IsAppendBlob(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _AppendWriter:
    """Continues an append blob (an upload distribution began): Append Block, 4 MiB each.

    Every append names the offset it expects (``appendpos``), so a retried append that
    had in fact succeeded is recognised instead of writing its bytes twice.
    """

    def __init__(self, driver: AzureDriver, blob: BlobClient, path: str, offset: int) -> None:
        self._driver = driver
        self._blob = blob
        self._path = path
        self._size = offset
        self._stored = offset
        self._buffer = bytearray()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def _append(self, data: bytes) -> None:
        from azure.core.exceptions import HttpResponseError

        with self._driver._errors(self._path):
            try:
                await self._blob.append_block(
                    data, length=len(data), appendpos_condition=self._stored
                )
            except HttpResponseError as exc:
                if exc.status_code != 412:
                    raise
                size = int((await self._blob.get_blob_properties()).size)
                if size != self._stored + len(data):
                    raise
        self._stored += len(data)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise StorageError(f"write to a closed writer ({self._path})", self._driver.name)
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= APPEND_SIZE:
            piece = bytes(self._buffer[:APPEND_SIZE])
            del self._buffer[:APPEND_SIZE]
            await self._append(piece)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._buffer:
            piece = bytes(self._buffer)
            self._buffer.clear()
            await self._append(piece)

    async def commit(self) -> None:
        await self.close()

    async def cancel(self) -> None:
        self._closed = True
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(self._path)


class _BlockWriter(PartWriter["AzureDriver"]):
    """Stages blocks as data arrives; ``close``/``commit`` commit the block list."""

    def __init__(
        self,
        driver: AzureDriver,
        blob: BlobClient,
        path: str,
        blocks: list[tuple[str, int]],
        offset: int,
        *,
        dirty: bool,
    ) -> None:
        super().__init__(driver, path, offset, driver.block_size, dirty=dirty)
        self._blob = blob
        self._blocks = blocks

    async def reopen_last_block(self) -> None:
        """Take the short last block back into the buffer (see COALESCE_AFTER)."""
        _, size = self._blocks[-1]
        with self._driver._errors(self._path):
            downloader = await self._blob.download_blob(offset=self._size - size, length=size)
            data = await downloader.readall()
        self._blocks.pop()
        self._buffer[:0] = data
        self._dirty = True

    async def _put_part(self, data: bytes) -> None:
        block_id = _block_id()
        with self._driver._errors(self._path):
            await self._blob.stage_block(block_id, data, length=len(data))
        self._blocks.append((block_id, len(data)))

    async def _save(self) -> None:
        if len(self._blocks) > MAX_BLOCKS:
            raise StorageError(
                f"{self._path}: more than {MAX_BLOCKS} blocks (upload in smaller chunks "
                "is not possible past this size)",
                self._driver.name,
            )
        from azure.storage.blob import BlobBlock, ContentSettings

        with self._driver._errors(self._path):
            await self._blob.commit_block_list(
                [BlobBlock(block_id) for block_id, _ in self._blocks],
                content_settings=ContentSettings(content_type="application/octet-stream"),
            )

    async def commit(self) -> None:
        await self.close()
