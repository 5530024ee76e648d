"""``/v2/<name>/manifests/<reference>``: put, get, head and delete manifests."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.errors import ErrorCode, RegistryError
from dockyard.api.params import body_stream, content_length, etag_matches, repository
from dockyard.api.urls import manifest_url
from dockyard.manifest import (
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
)

__all__ = ["delete_manifest", "get_manifest", "put_manifest"]

# What distribution says when a manifest's type is not in the client's Accept.
_NOT_ACCEPTED = {
    OCI_MANIFEST: "OCI manifest found, but accept header does not support OCI manifests",
    OCI_INDEX: "OCI index found, but accept header does not support OCI indexes",
    DOCKER_SCHEMA2: "Docker schema2 manifest found, but accept header does not support it",
    DOCKER_MANIFEST_LIST: "manifest list found, but accept header does not support it",
}


def _accepts(request: web.Request, media_type: str) -> bool:
    """False only when the client sent an Accept that rules ``media_type`` out."""
    accepted = {
        part.split(";", 1)[0].strip().lower()
        for header in request.headers.getall("Accept", [])
        for part in header.split(",")
    } - {""}
    if not accepted or "*/*" in accepted or "application/*" in accepted:
        return True
    return media_type in accepted


async def _read_manifest_body(request: web.Request) -> bytes:
    """The body, refused with 413 past the 4 MiB limit without reading further."""
    length = content_length(request)
    if length is not None and length > MAX_MANIFEST_SIZE:
        raise _too_large(length)
    body = body_stream(request)
    if body is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > MAX_MANIFEST_SIZE:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> RegistryError:
    return RegistryError(
        ErrorCode.SIZE_INVALID,
        f"manifest of {size} bytes exceeds the limit of {MAX_MANIFEST_SIZE}",
        message="manifest too large",
        status=413,
    )


async def get_manifest(request: web.Request) -> web.StreamResponse:
    repo = repository(request)
    reference = request.match_info["reference"]
    stored = await repo.get_manifest(reference)
    etag = f'"{stored.digest}"'
    headers = {
        "Docker-Content-Digest": str(stored.digest),
        "ETag": etag,
        "Content-Type": stored.media_type,
    }
    # As distribution: the ETag is compared before Accept is looked at.
    if etag_matches(request, stored.digest):
        return web.Response(status=304, headers=headers)
    # distribution refuses OCI types outside Accept by digest too; Docker types only by
    # tag (where it would convert them; dockyard does not, it answers the same 404).
    by_tag_only = stored.media_type not in (OCI_MANIFEST, OCI_INDEX)
    if not (by_tag_only and ":" in reference) and not _accepts(request, stored.media_type):
        message = _NOT_ACCEPTED.get(stored.media_type)
        if message is not None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, reference, message=message)
    if request.method == "HEAD":
        # web.Response computes Content-Length itself (0 without a body): stream instead.
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = len(stored.body)
        await response.prepare(request)
        await response.write_eof()
        return response
    return web.Response(status=200, body=stored.body, headers=headers)


async def put_manifest(request: web.Request) -> web.Response:
    repo = repository(request)
    reference = request.match_info["reference"]
    body = await _read_manifest_body(request)
    manifest = await repo.put_manifest(reference, body, request.headers.get("Content-Type"))
    headers = {
        "Location": manifest_url(request, repo.name, str(manifest.digest)),
        "Docker-Content-Digest": str(manifest.digest),
        "Content-Length": "0",
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request) -> web.Response:
    repo = repository(request)
    await repo.delete_manifest(request.match_info["reference"])
    return web.Response(status=202, headers={"Content-Length": "0"})
