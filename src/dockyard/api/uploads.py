"""``/v2/<name>/blobs/uploads/``: start, mount, chunk, finish, inspect and cancel uploads."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.auth import may_read, may_read_anywhere
from dockyard.api.context import context
from dockyard.api.errors import RegistryError, from_domain
from dockyard.api.params import (
    body_stream,
    content_length,
    parse_content_range,
    parse_digest,
    repository,
)
from dockyard.api.state import UploadState
from dockyard.api.urls import blob_url, upload_url
from dockyard.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    NameInvalid,
    RangeInvalid,
    SizeInvalid,
)
from dockyard.hashstate import SUPPORTED_ALGORITHMS
from dockyard.registry.namespace import Repository
from dockyard.types import BlobDescriptor, UploadStatus

__all__ = ["cancel_upload", "finish_upload", "patch_upload", "start_upload", "upload_status"]


def _progress(request: web.Request, repo: Repository, status: UploadStatus) -> dict[str, str]:
    """Headers telling the client where its upload stands and where to send the next chunk."""
    token = context(request).signer.pack(
        UploadState(repo.name, status.upload_id, status.offset, status.started_at)
    )
    return {
        "Location": upload_url(request, repo.name, status.upload_id, token),
        "Range": f"0-{max(status.offset - 1, 0)}",
        "Docker-Upload-UUID": status.upload_id,
        "Content-Length": "0",
    }


def _created(request: web.Request, repo: Repository, desc: BlobDescriptor) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": blob_url(request, repo.name, str(desc.digest)),
            "Docker-Content-Digest": str(desc.digest),
            "Content-Length": "0",
        },
    )


def _claimed_offset(request: web.Request, repo: Repository, upload_id: str) -> int | None:
    """The offset the signed ``_state`` token vouches for (None if the client sent none)."""
    token = request.query.get("_state")
    if token is None:
        return None
    state = context(request).signer.unpack(token)
    if state.name != repo.name or state.uuid != upload_id:
        raise BlobUploadInvalid("upload state token is for another upload")
    return state.offset


def _chunk_bounds(request: web.Request) -> tuple[int | None, int | None]:
    """``(start, length)`` of the chunk from Content-Range/Content-Length."""
    length = content_length(request)
    bounds = parse_content_range(request)
    if bounds is None:
        return None, length
    start, end = bounds
    if end < start:
        raise BlobUploadInvalid(f"Content-Range {start}-{end} ends before it starts")
    expected = end - start + 1
    if length is not None and length != expected:
        raise SizeInvalid(f"Content-Length {length} does not match Content-Range {start}-{end}")
    return start, expected


async def start_upload(request: web.Request) -> web.Response:
    """POST: a new upload, a monolithic upload (``?digest=``), or a mount (``?mount=``).

    ``?digest-algorithm=`` (OCI end-4c) names the algorithm of the digest that will
    finish the upload, so that a registry hashes its chunks with it. dockyard keeps
    the state of every algorithm it supports for every chunk (DESIGN contract 6), so
    the name is only checked: one it does not support is refused before any data is
    sent, and it must agree with ``?digest=`` when both are given.
    """
    repo = repository(request)
    query = request.query
    algorithm = query.get("digest-algorithm")
    if algorithm is not None and algorithm not in SUPPORTED_ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm {algorithm[:50]!r}")
    if "mount" in query:
        digest = parse_digest(query["mount"])
        source: Repository | None = None
        mountable = True
        if "from" in query:
            try:
                source = context(request).namespace.repository(query["from"])
            except NameInvalid:
                mountable = False
            # A source the caller may not read must not leak its blobs: upload instead.
            mountable = mountable and may_read(request, query["from"])
        else:
            mountable = may_read_anywhere(request)
        if mountable:
            desc = await repo.mount_blob(digest, source)
            if desc is not None:
                return _created(request, repo, desc)
    if "digest" in query:
        digest = parse_digest(query["digest"])
        if algorithm is not None and digest.algorithm != algorithm:
            raise DigestInvalid(f"digest {digest} is not a {algorithm} digest (digest-algorithm)")
        desc = await repo.push_blob(digest, body_stream(request), content_length(request))
        return _created(request, repo, desc)
    status = await repo.start_upload()
    return web.Response(status=202, headers=_progress(request, repo, status))


async def upload_status(request: web.Request) -> web.Response:
    repo = repository(request)
    upload_id = request.match_info["uuid"]
    _claimed_offset(request, repo, upload_id)  # any token must at least be this upload's
    # The real progress and a fresh token, even when the client's token is older.
    status = await repo.upload_status(upload_id)
    return web.Response(status=204, headers=_progress(request, repo, status))


async def patch_upload(request: web.Request) -> web.Response:
    """PATCH: one chunk, with Content-Range, or a streamed append without it."""
    repo = repository(request)
    upload_id = request.match_info["uuid"]
    claimed = _claimed_offset(request, repo, upload_id)
    start, length = _chunk_bounds(request)
    body = body_stream(request)
    try:
        if body is None:
            status = await repo.upload_status(upload_id)
            for offset in (claimed, start):
                if offset is not None and offset != status.offset:
                    raise RangeInvalid(f"chunk starts at {offset}, upload is at {status.offset}",
                                       status.offset)
        else:
            status = await repo.write_upload(
                upload_id, body, claimed=claimed, start=start, length=length
            )
    except RangeInvalid as exc:
        current = await repo.upload_status(upload_id)
        raise _range_error(request, repo, current, exc) from None
    return web.Response(status=202, headers=_progress(request, repo, status))


def _range_error(
    request: web.Request, repo: Repository, status: UploadStatus, exc: RangeInvalid
) -> RegistryError:
    """416 with the current Range and Location, so the client can resume from there."""
    err = from_domain(exc)
    err.headers.update(_progress(request, repo, status))
    del err.headers["Content-Length"]
    return err


async def finish_upload(request: web.Request) -> web.Response:
    """PUT ``?digest=``: the last chunk (optional), verification, and the blob made visible."""
    repo = repository(request)
    upload_id = request.match_info["uuid"]
    claimed = _claimed_offset(request, repo, upload_id)
    if "digest" not in request.query:
        raise DigestInvalid("the digest query parameter is required to finish an upload")
    digest = parse_digest(request.query["digest"])
    start, length = _chunk_bounds(request)
    try:
        desc = await repo.finish_upload(
            upload_id, digest, body_stream(request), claimed=claimed, start=start, length=length
        )
    except RangeInvalid as exc:
        current = await repo.upload_status(upload_id)
        raise _range_error(request, repo, current, exc) from None
    return _created(request, repo, desc)


async def cancel_upload(request: web.Request) -> web.Response:
    repo = repository(request)
    upload_id = request.match_info["uuid"]
    _claimed_offset(request, repo, upload_id)
    await repo.cancel_upload(upload_id)
    return web.Response(status=204, headers={"Content-Length": "0"})
