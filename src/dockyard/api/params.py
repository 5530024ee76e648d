"""Parsing what a request names: repository, digest, ranges, body. Nothing touches storage."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.api.context import context
from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import BlobUploadInvalid, DigestInvalid, SizeInvalid
from dockyard.registry.namespace import Repository

__all__ = [
    "body_stream",
    "content_length",
    "etag_matches",
    "parse_content_range",
    "parse_digest",
    "repository",
]

_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def repository(request: web.Request) -> Repository:
    """The repository named in the path; NAME_INVALID before anything else happens."""
    return context(request).namespace.repository(request.match_info["name"])


def parse_digest(value: str) -> Digest:
    try:
        return Digest.parse(value)
    except InvalidDigest as exc:
        raise DigestInvalid(str(exc)) from None


def etag_matches(request: web.Request, digest: Digest) -> bool:
    """If-None-Match names this content: ``*``, its ETag (weak or strong, as RFC 9110
    compares for If-None-Match), or, as distribution also takes it, the bare digest."""
    wanted = {f'"{digest}"', str(digest), "*"}
    return any(
        candidate.strip().removeprefix("W/") in wanted
        for header in request.headers.getall("If-None-Match", [])
        for candidate in header.split(",")
    )


def content_length(request: web.Request) -> int | None:
    raw = request.headers.get("Content-Length")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit() takes "²", int() does not
        raise SizeInvalid(f"invalid Content-Length {raw[:40]!r}")
    return int(raw)


def parse_content_range(request: web.Request) -> tuple[int, int] | None:
    """``Content-Range`` of an upload chunk as ``(start, end)`` inclusive, if sent.

    The spec's form is ``<start>-<end>``; the ``bytes `` prefix and ``/total``
    suffix some clients add are accepted too.
    """
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None
    match = _CONTENT_RANGE.fullmatch(raw.strip())
    if match is None:
        raise BlobUploadInvalid(f"malformed Content-Range {raw[:80]!r}")
    start, end = int(match.group(1)), int(match.group(2))
    return start, end


async def _stream(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_any():
            yield chunk
    except (ConnectionError, OSError, web.HTTPException) as exc:
        raise BlobUploadInvalid(f"request body ended early: {exc}") from None
    except Exception as exc:
        # aiohttp's payload errors (ContentLengthError, TransferEncodingError...).
        if type(exc).__module__.startswith("aiohttp"):
            raise BlobUploadInvalid(f"request body ended early: {exc}") from None
        raise


def body_stream(request: web.Request) -> AsyncIterator[bytes] | None:
    """The request body as a stream of chunks, or None when there is none."""
    if not request.can_read_body:
        return None
    return _stream(request)
