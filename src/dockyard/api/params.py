"""Parsing what a request names: repository, digest, ranges, body. Nothing touches storage."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

from aiohttp import hdrs, web
from multidict import istr

from dockyard.api.auth import GRANT
from dockyard.api.context import UrlSettings, context
from dockyard.api.errors import ErrorCode, RegistryError
from dockyard.api.requestid import current_request_id
from dockyard.api.urls import base_url_from
from dockyard.clientaddr import CONNECTION, remote_ip
from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import BlobUploadInvalid, DigestInvalid, SizeInvalid
from dockyard.notifications import NotifyingRepository, RequestRecord
from dockyard.registry.namespace import Repository

__all__ = [
    "MAX_COUNT",
    "body_stream",
    "content_length",
    "etag_matches",
    "parse_content_range",
    "parse_count",
    "parse_digest",
    "repository",
]

_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")

# Header names as istr: a lookup by an istr skips folding the name's case (about half of
# a lookup's cost; these are looked up in every request when notifications are on).
_HOST, _USER_AGENT, _FORWARDED_FOR = hdrs.HOST, hdrs.USER_AGENT, hdrs.X_FORWARDED_FOR
_FORWARDED_PROTO, _FORWARDED_HOST = hdrs.X_FORWARDED_PROTO, hdrs.X_FORWARDED_HOST
_REAL_IP = istr("X-Real-Ip")

#: The largest number a client may send (Go's int64, what distribution parses into).
MAX_COUNT = 2**63 - 1
_MAX_DIGITS = len(str(MAX_COUNT))


def parse_count(raw: str) -> int | None:
    """``raw`` as a decimal number in ``0..MAX_COUNT``; None when it is anything else.

    Every number a client sends goes through here. Only ASCII digits are taken
    (``str.isdigit`` also takes "²", which int() refuses), and their count is checked
    before conversion, so thousands of digits never reach Python's int-conversion
    limit (a ValueError, hence a 500, otherwise).
    """
    if not (raw.isascii() and raw.isdigit()):
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        return None
    value = int(digits)
    return value if value <= MAX_COUNT else None


def repository(request: web.Request) -> Repository:
    """The repository named in the path; NAME_INVALID before anything else happens.

    With notifications configured it is wrapped to emit this request's events.
    """
    ctx = context(request)
    repo = ctx.namespace.repository(request.match_info["name"])
    if ctx.notifier is not None:
        # What the events' ``request`` needs is taken now as plain values, not the
        # request or its headers: kept until the notifier runs, they would keep their
        # object graph alive past the response (work for the garbage collector). The
        # record is made from these by the notifier, off the request path, once for
        # every request of a client that sends the same.
        # The middlewares set the id and the grant before any handler runs; the id is
        # read from the context (a call fewer than the request's). The Host header is
        # request.host (a Python call) but when a client sends none.
        # The scheme and peer were taken once for the connection's requests.
        get = request.headers.get
        connection = CONNECTION.get() or (request.scheme, request.protocol.peername)
        key = (request.method, get(_HOST) or request.host, connection,
               request[GRANT].subject, ctx.urls,
               get(_USER_AGENT, ""), get(_FORWARDED_FOR, ""), get(_REAL_IP, ""),
               get(_FORWARDED_PROTO, ""), get(_FORWARDED_HOST, ""))
        repo = NotifyingRepository(repo, ctx.notifier,
                                   (current_request_id.get(), _client_record, key))
    return repo


ClientKey = tuple[
    str, str, tuple[str, object], "str | None", UrlSettings, str, str, str, str, str]
"""What a request's client record is made from (:func:`repository`)."""


#: The latest client record of each connection, by its ``(scheme, peer)``: with its
#: key, which keeps that tuple alive, so a new connection never meets a closed one's.
_CLIENTS: dict[tuple[str, object], tuple[ClientKey, RequestRecord]] = {}
_MAX_CLIENTS = 1024


def _client_record(key: ClientKey) -> RequestRecord:
    """``request`` (but its id) and ``actor`` of a request's events, as distribution fills
    them: made once for the requests of a connection while they send the same; the
    record is shared, so never changed.

    Found by the connection, then checked by comparing the keys: an LRU cache of the
    keys hashed the new strings of every request's headers, at twice the cost.
    """
    entry = _CLIENTS.get(key[2])
    if entry is None or entry[0] != key:
        if len(_CLIENTS) >= _MAX_CLIENTS:
            _CLIENTS.clear()
        entry = _CLIENTS[key[2]] = (key, _new_client_record(key))
    return entry[1]


def _new_client_record(key: ClientKey) -> RequestRecord:
    (method, host, (scheme, peer), actor, urls, useragent, forwarded_for, real_ip,
     forwarded_proto, forwarded_host) = key
    forwarded = {"X-Forwarded-Proto": forwarded_proto, "X-Forwarded-Host": forwarded_host}
    return RequestRecord(
        id="",
        addr=_remote_addr(forwarded_for, real_ip, peer),
        host=host,
        method=method,
        useragent=useragent,
        actor=actor,
        base_url=base_url_from(urls, forwarded, scheme, host),
    )


def _remote_addr(forwarded_for: str, real_ip: str, peer: object) -> str:
    """distribution's ``RemoteAddr``: X-Forwarded-For's first address, X-Real-Ip, the peer."""
    ip = remote_ip({"X-Forwarded-For": forwarded_for, "X-Real-Ip": real_ip}, None)
    if ip:
        return ip
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer) if peer else ""


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
    length = parse_count(raw)
    if length is None:
        raise SizeInvalid(f"invalid Content-Length {raw[:40]!r}")
    return length


def parse_content_range(request: web.Request) -> tuple[int, int] | None:
    """``Content-Range`` of an upload chunk as ``(start, end)`` inclusive, if sent.

    The spec's form is ``<start>-<end>``; the ``bytes `` prefix and ``/total``
    suffix some clients add are accepted too. Offsets past :data:`MAX_COUNT` can
    never match an upload: 416 ``RANGE_INVALID``.
    """
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None
    match = _CONTENT_RANGE.fullmatch(raw.strip())
    if match is None:
        raise BlobUploadInvalid(f"malformed Content-Range {raw[:80]!r}")
    start, end = parse_count(match.group(1)), parse_count(match.group(2))
    if start is None or end is None:
        raise RegistryError(ErrorCode.RANGE_INVALID, f"Content-Range {raw[:80]!r} out of bounds")
    return start, end


async def _stream(request: web.Request) -> AsyncIterator[bytes]:
    """The body's chunks; a body that stalls or trickles ends in BLOB_UPLOAD_INVALID.

    A client must not hold the upload (and its lock, and a connection) forever: it may
    send nothing for at most ``bodytimeout`` (``http.limits``), and over each
    ``bodytimeout`` spent waiting for it must average ``minbodyrate`` bytes a second.
    Only time spent waiting for the client counts, so a slow storage backend downstream
    is never blamed on it.
    """
    ctx = context(request)
    stall, rate = ctx.body_timeout, ctx.min_body_rate
    content = request.content
    waited, received = 0.0, 0  # in the current window
    try:
        while True:
            began = time.monotonic()
            try:
                async with asyncio.timeout(stall):
                    # One buffered piece as it came off the socket: readany() joins all
                    # the pieces buffered (a copy of every byte when the reader lags).
                    chunk, chunk_end = await content.readchunk()
            except TimeoutError:
                raise BlobUploadInvalid(
                    f"request body sent nothing for {stall:g}s (http.limits.bodytimeout)"
                ) from None
            waited += time.monotonic() - began
            if not chunk:
                if chunk_end:  # the end of a chunk of Transfer-Encoding: chunked
                    continue
                return
            received += len(chunk)
            if waited >= stall:
                if received < rate * waited:
                    raise BlobUploadInvalid(
                        f"request body sent {received} bytes in {waited:.1f}s, below "
                        f"{rate} bytes/s (http.limits.minbodyrate)"
                    )
                waited, received = 0.0, 0
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
