"""The benchmark's HTTP client, its content and the blob workloads it runs.

A minimal HTTP/1.1 keep-alive client on asyncio streams (far cheaper per request than a
general client, so that the servers, not the client, are the bottleneck on a 2-core
machine), a blocking receiver for big bodies, and the requests every group sends.
Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

BLOCK = 4 << 20  # the pre-generated random buffer that every big body repeats
READ_CHUNK = 1 << 20  # receive buffer of a pull, hashed while the other one fills
PAGE = 4096  # receive buffers start on a page boundary (see _receive_buffers)
# A pull's receiving thread is woken once this much has arrived, not for every segment.
RECEIVE_LOWAT = 256 << 10
RECEIVE_BUFFER = 4 << 20  # SO_RCVBUF of a pull (the kernel doubles it; at most rmem_max)
BIG_TIMEOUT = 900.0  # seconds for one request moving a big blob
SMALL_TIMEOUT = 60.0  # seconds for any other request
LOOPBACK = "127.0.0.1"
_RECEIVE = threading.local()  # each receiving thread's two page-aligned buffers, kept


# --------------------------------------------------------------------------- HTTP client


class ProtocolError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    Far cheaper per request than a general client (the servers, not the client, must be
    the bottleneck on a 2-core machine), and it streams request bodies from memoryviews
    of one pre-generated buffer without copying them.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=8 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.transport.set_write_buffer_limits(high=8 << 20)
        self.reader, self.writer = reader, writer
        return reader, writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | tuple[int, Iterator[memoryview]] | None = None,
        limit: float = SMALL_TIMEOUT,
    ) -> Response:
        try:
            return await asyncio.wait_for(
                self._request(method, target, headers or {}, body), limit
            )
        except BaseException:
            self.close()
            raise

    async def _request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | tuple[int, Iterator[memoryview]] | None,
    ) -> Response:
        reader, writer = (self.reader, self.writer) if self.writer else await self._open()
        assert reader is not None and writer is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if isinstance(body, bytes):
            lines.append(f"Content-Length: {len(body)}")
        elif body is not None:
            lines.append(f"Content-Length: {body[0]}")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if isinstance(body, bytes):
            writer.write(head + body)
        else:
            writer.write(head)
            if body is not None:
                for piece in body[1]:
                    writer.write(piece)
                    await writer.drain()
        await writer.drain()
        while True:
            response = await self._read_head(reader)
            if response.status >= 200:
                break
        response.body = await self._read_body(reader, method, response)
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> Response:
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return Response(int(parts[1]), headers, b"")

    async def _read_body(
        self, reader: asyncio.StreamReader, method: str, response: Response
    ) -> bytes:
        if method == "HEAD" or response.status in (204, 304):
            return b""
        if "chunked" in response.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers from these servers
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        if "content-length" not in response.headers:
            data = await reader.read()
            self.close()
            return data
        return await reader.readexactly(int(response.headers["content-length"]))


def fetch_hashed(
    port: int, target: str, pool: ThreadPoolExecutor, verify: bool = True,
    host_header: str | None = None, expected: BigBlob | None = None,
) -> tuple[int, int, str]:
    """GET ``target`` from 127.0.0.1:``port`` on a blocking socket: ``(status, body size,
    sha256 digest of the body)`` (the digest is "" when not ``verify``). ``host_header``
    is the Host to send (a pre-signed URL's signature covers it).

    Received with recv_into into two preallocated buffers, each hashed in ``pool`` while the
    other one fills: about a third of the client CPU a stream reader costs. The buffers
    are 1 MiB, so that what is received is still in the CPU's cache when compared or
    hashed (8 MiB each, as before, spilled it), and ``SO_RCVLOWAT`` wakes the thread
    once 256 KiB have arrived instead of for every segment (each wake-up cost a context
    switch on both sides of the loopback): a 256 MiB pull from a sendfile on loopback
    went from about 3 to 7 GB/s, with a third less CPU on each side. sha256 still
    takes 0.65 CPU-s per GB here, as much as a server needs to send it: with ``expected``
    the body is compared byte for byte with that blob's content instead (an exact check,
    about 25 times cheaper), and the digest returned is the blob's if every byte matched,
    else "".
    """
    host = host_header or f"{LOOPBACK}:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # A fixed receive buffer, set before connecting (the window scale follows from
        # it): SO_RCVLOWAT on an autotuned one also clamps the window to the low mark.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.settimeout(BIG_TIMEOUT)
        sock.connect((LOOPBACK, port))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                raise ProtocolError("connection closed before the response head")
            head += data
        head, _, rest = head.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in header_lines)}
        if "content-length" not in headers:
            raise ProtocolError(f"GET {target}: {status} without Content-Length")
        length = int(headers["content-length"])
        # Only for the body: a recv asking for more than is left would wait for it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, RECEIVE_LOWAT)
        lowat = True
        # Compared when its length is right (a wrong length fails the caller's check).
        blob = expected if verify and expected is not None and expected.size == length else None
        h = hashlib.sha256()
        same = blob is None or _same(blob, 0, rest)
        if blob is None:
            h.update(rest)
        received = len(rest)
        buffers = _receive_buffers()
        pending: Future[None] | None = None
        turn = 0
        while received < length:
            raw, start = buffers[turn]
            buf = memoryview(raw)[start:start + READ_CHUNK]
            want = min(len(buf), length - received)
            got = 0
            while got < want:
                if lowat and length - received - got < RECEIVE_LOWAT:
                    # The kernel wakes a reader by the mark, not by what it asked for:
                    # the tail would never wake it on a connection kept alive.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                    lowat = False
                n = sock.recv_into(buf[got:want])
                if n == 0:
                    raise ProtocolError(f"GET {target}: connection closed at {received + got}")
                got += n
            if blob is not None:
                same = same and _same(blob, received, raw, got, start)
            else:
                if pending is not None:
                    pending.result()
                if verify:
                    pending = pool.submit(h.update, buf[:got])
            received += got
            turn ^= 1
        if pending is not None:
            pending.result()
    if blob is not None:
        return status, received, blob.digest if same else ""
    return status, received, "sha256:" + h.hexdigest() if verify else ""


def _receive_buffers() -> list[tuple[bytearray, int]]:
    """The calling thread's two receive buffers, made once, each as ``(bytearray, start)``:
    READ_CHUNK bytes from ``start``, which is on a page boundary.

    Made once because a fresh 8 MiB ``bytearray`` per pull costs a page fault per 4 KiB
    it fills (and on this VM a host fault when the page was handed back), client CPU
    that grew with the number of pulls, not bytes. Page-aligned because glibc puts a
    1 MiB ``bytearray`` 16 bytes past a page boundary, and on this AMD EPYC the kernel's
    copy into user memory (``rep movsb``) runs about five times slower when the
    destination is a few bytes past the source's offset in its page: a body sent from
    the page cache (``sendfile``, page-aligned) then cost the client 0.8 CPU-s a GB
    instead of 0.15 (benchmarks/README.md, "The pull row and the client's buffer").
    A Go client's 32 KiB buffers are page-aligned too.
    """
    buffers: list[tuple[bytearray, int]] | None = getattr(_RECEIVE, "buffers", None)
    if buffers is None:
        buffers = []
        for _ in range(2):
            raw = bytearray(READ_CHUNK + PAGE)
            address = ctypes.addressof(ctypes.c_char.from_buffer(raw))
            buffers.append((raw, -address % PAGE))
        _RECEIVE.buffers = buffers
    return buffers


def _same(
    blob: BigBlob, offset: int, data: bytes | bytearray, count: int | None = None,
    start: int = 0,
) -> bool:
    """Whether ``count`` bytes of ``data`` from ``start`` (all after it by default) are
    ``blob``'s from ``offset`` (memcmp by ``startswith``, where comparing memoryviews
    goes item by item)."""
    end = offset + (len(data) - start if count is None else count)
    if end > blob.size:
        return False
    pos = start
    for piece in blob.pieces(offset, end):
        if not data.startswith(piece, pos):
            return False
        pos += len(piece)
    return True


def path_of(location: str) -> str:
    """The request target of a Location header (absolute or relative)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_digest(target: str, digest: str) -> str:
    return f"{target}{'&' if '?' in target else '?'}digest={quote(digest, safe='')}"


def expect(response: Response, status: int, what: str) -> None:
    if response.status != status:
        raise ProtocolError(
            f"{what}: expected {status}, got {response.status} {response.body[:300]!r}"
        )


# --------------------------------------------------------------------------- content


class BigBlob:
    """``size`` bytes made of one random buffer repeated; the first bytes are unique to
    this blob so that no push finds its content already stored.

    Only those first bytes are the blob's own: the rest are views of the shared buffer,
    which stays in the CPU's cache while eight pulls compare their bodies with it (a 4
    MiB copy per blob, as before, was read from memory for every compare).
    """

    def __init__(self, pattern: bytes, size: int, tag: bytes) -> None:
        self.tag = bytes(tag[:BLOCK])
        self.pattern = pattern
        self.size = size
        h = hashlib.sha256()
        for piece in self.pieces(0, size):
            h.update(piece)
        self.digest = "sha256:" + h.hexdigest()

    def pieces(self, start: int, end: int) -> Iterator[memoryview]:
        offset = start
        while offset < end:
            if offset < len(self.tag):
                n = min(len(self.tag), end) - offset
                yield memoryview(self.tag)[offset : offset + n]
                offset += n
                continue
            within = offset % BLOCK
            n = min(BLOCK - within, end - offset)
            yield memoryview(self.pattern)[within : within + n]
            offset += n


def small_blobs(count: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(count):
        data = os.urandom(1024 + secrets.randbelow(3 * 1024 + 1))
        out.append(("sha256:" + hashlib.sha256(data).hexdigest(), data))
    return out


# --------------------------------------------------------------------------- workloads


async def start_upload(conn: Connection, repo: str) -> str:
    r = await conn.request("POST", f"/v2/{repo}/blobs/uploads/")
    expect(r, 202, "POST upload")
    return path_of(r.headers["location"])


async def put_blob(conn: Connection, repo: str, blob: BigBlob) -> None:
    """``POST`` then ``PUT ?digest=`` with the whole blob as a streamed body."""
    target = await start_upload(conn, repo)
    r = await conn.request(
        "PUT", with_digest(target, blob.digest),
        {"Content-Type": "application/octet-stream"},
        (blob.size, blob.pieces(0, blob.size)), limit=BIG_TIMEOUT,
    )
    expect(r, 201, "monolithic PUT")
    if r.headers.get("docker-content-digest") != blob.digest:
        raise ProtocolError(f"monolithic PUT: digest {r.headers.get('docker-content-digest')}")


async def push_monolithic(port: int, repo: str, blob: BigBlob) -> float:
    conn = Connection(port)
    try:
        t0 = time.perf_counter()
        await put_blob(conn, repo, blob)
        return time.perf_counter() - t0
    finally:
        conn.close()


async def push_chunked(port: int, repo: str, blob: BigBlob, chunk: int) -> tuple[float, float]:
    """(seconds for the whole push, seconds for the final PUT alone)."""
    conn = Connection(port)
    try:
        t0 = time.perf_counter()
        target = await start_upload(conn, repo)
        for start in range(0, blob.size, chunk):
            end = min(start + chunk, blob.size)
            r = await conn.request(
                "PATCH", target,
                {"Content-Type": "application/octet-stream",
                 "Content-Range": f"{start}-{end - 1}"},
                (end - start, blob.pieces(start, end)), limit=BIG_TIMEOUT,
            )
            expect(r, 202, f"PATCH {start}-{end - 1}")
            target = path_of(r.headers["location"])
        t1 = time.perf_counter()
        r = await conn.request("PUT", with_digest(target, blob.digest), limit=BIG_TIMEOUT)
        t2 = time.perf_counter()
        expect(r, 201, "final PUT")
        return t2 - t0, t2 - t1
    finally:
        conn.close()


def loopback_target(location: str) -> tuple[int, str, str]:
    """``(port, request target, Host header)`` of a redirect's absolute Location, which
    must point at 127.0.0.1 (the only host this benchmark ever talks to)."""
    parts = urlsplit(location)
    if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
        raise ProtocolError(f"redirect to {location!r}: not http://{LOOPBACK}:<port>")
    return parts.port, path_of(location), parts.netloc


async def pull(
    port: int, repo: str, blob: BigBlob, pool: ThreadPoolExecutor, verify: bool,
    redirect: bool = False, compare: bool = False,
) -> float:
    """Seconds to GET the blob; with ``redirect`` the registry must answer 307 and the
    Location (a pre-signed URL of the S3 server on loopback) is followed, both timed.
    With ``compare`` (and ``verify``) the body is compared with the blob's bytes instead
    of hashed (see :func:`fetch_hashed`)."""
    target = f"/v2/{repo}/blobs/{blob.digest}"
    t0 = time.perf_counter()
    host = None
    if redirect:
        conn = Connection(port)
        try:
            r = await conn.request("GET", target)
        finally:
            conn.close()
        expect(r, 307, "GET blob (redirect expected)")
        port, target, host = loopback_target(r.headers["location"])
    status, size, digest = await asyncio.to_thread(
        fetch_hashed, port, target, pool, verify, host, blob if compare else None
    )
    elapsed = time.perf_counter() - t0
    if status != 200 or size != blob.size or (verify and digest != blob.digest):
        raise ProtocolError(f"GET blob: {status}, {size} bytes with {digest}, "
                            f"expected {blob.size} bytes with {blob.digest}")
    return elapsed


async def run_pool(
    port: int, concurrency: int, count: int,
    job: Callable[[Connection, int], Awaitable[None]], rate: float | None = None,
) -> float:
    """Run ``job(conn, i)`` for i in range(count) on ``concurrency`` keep-alive connections.

    As fast as they are answered, or with ``rate`` open loop: job ``i`` is due at ``i /
    rate`` seconds (on whichever connection is free), so the server sees the same offered
    load whatever it costs (the time taken is then about ``count / rate`` unless the
    server falls behind).
    """
    next_index = iter(range(count))
    t0 = time.perf_counter()

    async def worker() -> None:
        conn = Connection(port)
        try:
            for i in next_index:
                if rate and (delay := t0 + i / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                await job(conn, i)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def push_small(port: int, repo: str, blobs: list[tuple[str, bytes]], conc: int) -> float:
    async def job(conn: Connection, i: int) -> None:
        digest, data = blobs[i]
        target = await start_upload(conn, repo)
        r = await conn.request("PUT", with_digest(target, digest),
                               {"Content-Type": "application/octet-stream"}, data)
        expect(r, 201, "small PUT")

    return await run_pool(port, conc, len(blobs), job)


async def heads(
    port: int, repo: str, digests: list[str], count: int, conc: int, rate: float | None = None
) -> float:
    """``count`` blob HEADs on ``conc`` connections: as fast as they go, or at ``rate``
    per second (:func:`run_pool`)."""

    async def job(conn: Connection, i: int) -> None:
        digest = digests[i % len(digests)]
        r = await conn.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        expect(r, 200, "HEAD blob")
        if r.headers.get("docker-content-digest") != digest:
            raise ProtocolError(f"HEAD blob: digest {r.headers.get('docker-content-digest')}")

    return await run_pool(port, conc, count, job, rate)
