#!/usr/bin/env python3
"""dockyard side by side with Debian's docker-registry (distribution 2.8), in one run.

Starts both servers on free loopback ports, each with filesystem storage in its own
folder under one temporary directory, and runs the same workloads against both,
alternating server by server in every repetition. Prints the median of each figure for
both and the ratio, where > 1 always means dockyard did better. See benchmarks/README.md.

    python3 benchmarks/run.py                       # full size: 1 GiB blob, 3 repetitions
    python3 benchmarks/run.py --size 64M --repeat 1 # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import DISTRIBUTION_BINARY, RegistryProcess  # noqa: E402

BLOCK = 4 << 20  # the pre-generated random buffer that every big body repeats
READ_CHUNK = 8 << 20  # receive buffer of a pull, hashed while the other one fills
MB = 1_000_000
BIG_TIMEOUT = 900.0  # seconds for one request moving the big blob
SMALL_TIMEOUT = 60.0  # seconds for any other request
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- servers


def process_group(pgid: int) -> list[int]:
    """Every live process in the group ``pgid`` (a server and the workers it forked)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the group's processes, from /proc/<pid>/stat."""
    ticks = 0
    for pid in process_group(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLK_TCK


def group_peak_rss_mib(pgid: int) -> float:
    """Largest VmHWM (peak resident set) among the group's processes, in MiB."""
    peak = 0
    for pid in process_group(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


class Server:
    """A registry process of the test suite's (tests/servers.py), plus what is measured.

    Its own process group (``start_new_session``) holds it and its workers.
    """

    def __init__(self, label: str, proc: RegistryProcess) -> None:
        self.label = label
        self.proc = proc

    @property
    def port(self) -> int:
        return self.proc.port

    def cpu_seconds(self) -> float:
        pid = self.proc.pid
        return group_cpu_seconds(pid) if pid is not None else 0.0

    def peak_rss_mib(self) -> float:
        pid = self.proc.pid
        return group_peak_rss_mib(pid) if pid is not None else 0.0

    def drop_blob(self, digest: str) -> None:
        """Remove a benchmark blob's data directly, to keep the disk from filling up."""
        alg, hexpart = digest.split(":")
        shutil.rmtree(
            self.proc.root / "docker/registry/v2/blobs" / alg / hexpart[:2] / hexpart,
            ignore_errors=True,
        )


def make_servers(workdir: Path, workers: int) -> list[Server]:
    """dockyard (this checkout's src/) and docker-registry, each in its own folder."""
    secret = secrets.token_hex(32)
    overrides = {
        "log": {"accesslog": {"disabled": True}},
        "storage": {
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
    }
    return [
        Server("dockyard", RegistryProcess(
            workdir / "dockyard", kind="dockyard", secret=secret, overrides=overrides,
            extra_args=["--workers", str(workers)], log_level="warn")),
        Server("docker-registry", RegistryProcess(
            workdir / "docker-registry", kind="distribution", secret=secret,
            overrides=overrides, log_level="error")),
    ]


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
            parts = []
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
    port: int, target: str, pool: ThreadPoolExecutor, verify: bool = True
) -> tuple[int, int, str]:
    """GET ``target`` on a blocking socket: ``(status, body size, sha256 digest of the body)``
    (the digest is "" when not ``verify``).

    Received with recv_into into two preallocated buffers, each hashed in ``pool`` while the
    other one fills: about a third of the client CPU a stream reader costs, so the client
    stays well ahead of both servers.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=BIG_TIMEOUT) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
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
        h = hashlib.sha256()
        h.update(rest)
        received = len(rest)
        buffers = [memoryview(bytearray(READ_CHUNK)) for _ in range(2)]
        pending: Future[None] | None = None
        turn = 0
        while received < length:
            buf = buffers[turn]
            want = min(len(buf), length - received)
            got = 0
            while got < want:
                n = sock.recv_into(buf[got:want])
                if n == 0:
                    raise ProtocolError(f"GET {target}: connection closed at {received + got}")
                got += n
            if pending is not None:
                pending.result()
            if verify:
                pending = pool.submit(h.update, buf[:got])
            received += got
            turn ^= 1
        if pending is not None:
            pending.result()
    return status, received, "sha256:" + h.hexdigest() if verify else ""


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
    this blob so that no push finds its content already stored."""

    def __init__(self, pattern: bytes, size: int, tag: bytes) -> None:
        first = bytearray(pattern)
        first[: len(tag)] = tag
        self.blocks = (bytes(first), pattern)
        self.size = size
        h = hashlib.sha256()
        for piece in self.pieces(0, size):
            h.update(piece)
        self.digest = "sha256:" + h.hexdigest()

    def pieces(self, start: int, end: int) -> Iterator[memoryview]:
        offset = start
        while offset < end:
            index, within = divmod(offset, BLOCK)
            block = self.blocks[0 if index == 0 else 1]
            n = min(BLOCK - within, end - offset)
            yield memoryview(block)[within : within + n]
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


async def push_monolithic(port: int, repo: str, blob: BigBlob) -> float:
    conn = Connection(port)
    try:
        t0 = time.perf_counter()
        target = await start_upload(conn, repo)
        r = await conn.request(
            "PUT", with_digest(target, blob.digest),
            {"Content-Type": "application/octet-stream"},
            (blob.size, blob.pieces(0, blob.size)), limit=BIG_TIMEOUT,
        )
        elapsed = time.perf_counter() - t0
        expect(r, 201, "monolithic PUT")
        if r.headers.get("docker-content-digest") != blob.digest:
            raise ProtocolError(f"monolithic PUT: digest {r.headers.get('docker-content-digest')}")
        return elapsed
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


async def pull(
    port: int, repo: str, blob: BigBlob, pool: ThreadPoolExecutor, verify: bool
) -> float:
    t0 = time.perf_counter()
    status, size, digest = await asyncio.to_thread(
        fetch_hashed, port, f"/v2/{repo}/blobs/{blob.digest}", pool, verify
    )
    elapsed = time.perf_counter() - t0
    if status != 200 or size != blob.size or (verify and digest != blob.digest):
        raise ProtocolError(f"GET blob: {status}, {size} bytes with {digest}, "
                            f"expected {blob.size} bytes with {blob.digest}")
    return elapsed


async def run_pool(port: int, concurrency: int, count: int, job: Any) -> float:
    """Run ``job(conn, i)`` for i in range(count) on ``concurrency`` keep-alive connections."""
    next_index = iter(range(count))

    async def worker() -> None:
        conn = Connection(port)
        try:
            for i in next_index:
                await job(conn, i)
        finally:
            conn.close()

    t0 = time.perf_counter()
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


async def heads(port: int, repo: str, digests: list[str], count: int, conc: int) -> float:
    async def job(conn: Connection, i: int) -> None:
        r = await conn.request("HEAD", f"/v2/{repo}/blobs/{digests[i % len(digests)]}")
        expect(r, 200, "HEAD blob")

    return await run_pool(port, conc, count, job)


# --------------------------------------------------------------------------- the run


@dataclass
class Row:
    key: str
    title: str
    unit: str
    higher_is_better: bool


def rows_for(args: argparse.Namespace) -> list[Row]:
    size = human(args.size)
    return [
        Row("mono", f"monolithic push, {size} (POST + PUT)", "MB/s", True),
        Row("chunked", f"chunked push, {size} in {human(args.chunk)} PATCHes", "MB/s", True),
        Row("final_put", "  final PUT of the chunked push", "ms", False),
        Row("pull", f"pull, {size} ({'length' if args.no_verify else 'sha256'} checked)",
            "MB/s", True),
        Row("small", f"{args.small:,} small blobs 1-4 KiB, concurrency {args.small_concurrency}",
            "blobs/s", True),
        Row("head", f"blob HEAD x {args.heads:,}, concurrency {args.head_concurrency}",
            "req/s", True),
    ]


@dataclass
class Sample:
    value: float
    server_cpu: float = 0.0
    client_cpu: float = 0.0


class Measure:
    """Server (process group) and client CPU seconds around one workload."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> Measure:
        self.s0 = self.server.cpu_seconds()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server_cpu = self.server.cpu_seconds() - self.s0
        self.client_cpu = time.process_time() - self.c0


async def run_server(
    server: Server, rep: int, args: argparse.Namespace, blobs: dict[str, BigBlob],
    pool: ThreadPoolExecutor,
) -> dict[str, Sample]:
    out: dict[str, Sample] = {}
    port = server.port
    repo = f"bench/r{rep}"
    os.sync()  # no dirty pages of the previous server's pushes in this one's figures

    with Measure(server) as m:
        seconds = await push_monolithic(port, repo, blobs["mono"])
    out["mono"] = Sample(args.size / seconds / MB, m.server_cpu, m.client_cpu)

    with Measure(server) as m:
        seconds = await pull(port, repo, blobs["mono"], pool, not args.no_verify)
    out["pull"] = Sample(args.size / seconds / MB, m.server_cpu, m.client_cpu)
    server.drop_blob(blobs["mono"].digest)
    os.sync()

    with Measure(server) as m:
        seconds, final = await push_chunked(port, repo, blobs["chunked"], args.chunk)
    out["chunked"] = Sample(args.size / seconds / MB, m.server_cpu, m.client_cpu)
    out["final_put"] = Sample(final * 1000)
    server.drop_blob(blobs["chunked"].digest)
    os.sync()

    small = small_blobs(args.small)
    with Measure(server) as m:
        seconds = await push_small(port, repo, small, args.small_concurrency)
    out["small"] = Sample(args.small / seconds, m.server_cpu, m.client_cpu)

    with Measure(server) as m:
        seconds = await heads(port, repo, [d for d, _ in small], args.heads,
                              args.head_concurrency)
    out["head"] = Sample(args.heads / seconds, m.server_cpu, m.client_cpu)
    return out


async def bench(servers: list[Server], args: argparse.Namespace,
                rows: list[Row]) -> dict[str, dict[str, list[Sample]]]:
    results: dict[str, dict[str, list[Sample]]] = {s.label: {} for s in servers}
    pattern = os.urandom(BLOCK)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for rep in range(args.repeat):
            nonce = secrets.token_hex(8)
            blobs = {
                kind: BigBlob(pattern, args.size, f"dockyard-bench {nonce} {kind}".encode())
                for kind in ("mono", "chunked")
            }
            for server in servers:
                samples = await run_server(server, rep, args, blobs, pool)
                for key, sample in samples.items():
                    results[server.label].setdefault(key, []).append(sample)
                log(f"[{rep + 1}/{args.repeat}] {server.label:<15} " + "  ".join(
                    f"{row.key} {samples[row.key].value:,.1f}" for row in rows))
    return results


def human(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 64M, 4096)")
    shift = {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2).upper()]
    return int(match.group(1)) << shift


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def report(servers: list[Server], rows: list[Row], results: dict[str, dict[str, list[Sample]]],
           args: argparse.Namespace, registry_version: str) -> str:
    a, b = servers[0].label, servers[1].label
    lines = [
        f"dockyard (--workers {args.workers}) vs docker-registry {registry_version}: "
        f"median of {args.repeat}; MB = 10^6 bytes.",
        "ratio > 1 means dockyard is better: dockyard/docker-registry for rates,",
        "docker-registry/dockyard for times (ms).",
        "",
        f"| workload | unit | {a} | {b} | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        va = statistics.median(s.value for s in results[a][row.key])
        vb = statistics.median(s.value for s in results[b][row.key])
        ratio = va / vb if row.higher_is_better else vb / va
        lines.append(f"| {row.title} | {row.unit} | {fmt(va)} | {fmt(vb)} | {ratio:.2f} |")
    lines += [
        "",
        "CPU seconds per workload (median): server process(es) / benchmark client",
        "",
        f"| workload | {a} server | {a} client | {b} server | {b} client |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.key == "final_put":
            continue
        cells = []
        for label in (a, b):
            samples = results[label][row.key]
            cells.append(f"{statistics.median(s.server_cpu for s in samples):.2f}")
            cells.append(f"{statistics.median(s.client_cpu for s in samples):.2f}")
        lines.append(f"| {row.title} | " + " | ".join(cells) + " |")
    lines += ["", "peak RSS of the largest server process: " + ", ".join(
        f"{s.label} {s.peak_rss_mib():.0f} MiB" for s in servers)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30,
                        help="size of the big blob (default 1G; e.g. 64M for a quick run)")
    parser.add_argument("--chunk", type=parse_size, default=16 << 20,
                        help="PATCH chunk size of the chunked push (default 16M)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions; each figure is the median (default 3)")
    parser.add_argument("--workers", type=int, default=2,
                        help="dockyard serve --workers N (default 2, the machine's cores)")
    parser.add_argument("--small", type=int, default=2000,
                        help="number of small blobs (default 2000)")
    parser.add_argument("--small-concurrency", type=int, default=16)
    parser.add_argument("--heads", type=int, default=20000,
                        help="number of HEAD requests (default 20000)")
    parser.add_argument("--head-concurrency", type=int, default=32)
    parser.add_argument("--no-verify", action="store_true",
                        help="pull without the sha256 check, which caps a client near "
                             "2 GB/s on one core (the length is still checked)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="parent of the temporary storage folders (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the storage folders and server logs")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every sample to this file")
    args = parser.parse_args(argv)
    if args.size < 1 or args.chunk < 1 or args.repeat < 1 or args.small < 1 or args.heads < 1:
        parser.error("sizes and counts must be positive")
    if not os.access(DISTRIBUTION_BINARY, os.X_OK):
        parser.error(f"{DISTRIBUTION_BINARY} is missing: run scripts/install-test-deps "
                     "(apt-get install docker-registry)")
    registry_version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "docker-registry"],
        capture_output=True, text=True, check=False).stdout.strip() or "(unknown version)"

    # SIGINT (even where a shell started us ignoring it) and SIGTERM end the run through
    # the finally below, which stops both servers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=args.dir))
    servers = make_servers(workdir, args.workers)
    rows = rows_for(args)
    try:
        for server in servers:
            server.proc.start()
            log(f"{server.label} on {server.proc.url}, storage {server.proc.root}")
        try:
            import uvloop
            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(bench(servers, args, rows))
        text = report(servers, rows, results, args, registry_version)
        print(text, flush=True)
        if args.json:
            args.json.write_text(json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()},
                 "results": {label: {k: [vars(s) for s in v] for k, v in per.items()}
                             for label, per in results.items()}}, indent=1))
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:
        log(f"benchmark failed: {exc!r}")
        for server in servers:
            log(f"--- {server.label} log ({server.proc.log_path}):\n{server.proc.log_tail()}")
        return 1
    finally:
        for server in servers:
            server.proc.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
