"""Hostile clients (issue 8): huge numbers, broken framing, big headers, slow and idle clients.

Every test drives a real server process over raw sockets on loopback: a 4xx, never a
500, and no traceback in the server's log. Slow-client tests bound how long they wait
(so a server that never cuts a client off fails instead of hanging) but assert only
what happened: a connection closed, another client answered.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from tests.support.api import (
    TARGET,
    assert_error,
    blob_path,
    deviates_on_distribution,
    digest_of,
    follow,
    patch_chunk,
    push_blob,
    random_repo,
    raw_request,
    start_upload,
    with_query,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]

HUGE = "9" * 5000  # past Python's 4300-digit int-conversion limit
#: Upper bound on any wait below: a server that never acts fails the test instead of hanging.
DEADLINE = 30.0

dockyard_only = pytest.mark.skipif(
    TARGET != "dockyard",
    reason="distribution has no http.limits (header/body timeouts, connection cap)",
)


# -- helpers -----------------------------------------------------------------------------


def exchange(server: RegistryProcess, data: bytes, until: bytes | None = None) -> bytes:
    """Send ``data`` on a new connection; read until the server closes it (or ``until``)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        # The server may answer and close before reading all of an oversized request;
        # what it sent before closing is still read below.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        while until is None or until not in b"".join(chunks):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(response: bytes) -> list[int]:
    """The status codes of every response in ``response``, in order."""
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", response)]


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return statuses(response)[0]


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (EOF or reset); False while it is open."""
    sock.settimeout(0.01)
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def assert_no_traceback(server: RegistryProcess) -> None:
    assert "Traceback" not in server.log_text(), server.log_tail()


@pytest.fixture
def hostile_registry(registry_factory: RegistryFactory) -> Iterator[RegistryProcess]:
    """A registry of its own, so its log holds only what these requests caused (upload
    purging off: its first run, at a random moment, logs a summary)."""
    server = registry_factory(
        overrides={"storage": {"maintenance": {"uploadpurging": {"enabled": False}}}})
    yield server
    assert_no_traceback(server)


# -- numbers -----------------------------------------------------------------------------


@deviates_on_distribution("an n it cannot parse is ignored: 200 with the default page")
def test_huge_page_sizes(hostile_registry: RegistryProcess) -> None:
    client = httpx.Client(base_url=hostile_registry.url, timeout=DEADLINE)
    for path in ("/v2/_catalog", f"/v2/{random_repo()}/tags/list"):
        response = client.get(path, params={"n": HUGE})
        assert_error(response, 400, "PAGINATION_NUMBER_INVALID")


@deviates_on_distribution(
    "a Range past int64 gets the whole blob's headers, then the connection closes, no body"
)
def test_huge_ranges(hostile_registry: RegistryProcess) -> None:
    client = httpx.Client(base_url=hostile_registry.url, timeout=DEADLINE)
    repo, data = random_repo(), b"hostile range"
    digest = push_blob(client, repo, data)
    for byte_range in (f"bytes={HUGE}-", f"bytes=-{HUGE}", f"bytes=0-{HUGE}", f"bytes={HUGE}-1"):
        response = client.get(blob_path(repo, digest), headers={"Range": byte_range})
        assert response.status_code == 416, (byte_range, response.status_code, response.text)
    # Within the bounds, ranges still work.
    response = client.get(blob_path(repo, digest), headers={"Range": "bytes=0-6"})
    assert response.status_code == 206 and response.content == data[:7]


@deviates_on_distribution(
    "a Content-Range it cannot parse answers 500 UNKNOWN (strconv error as detail)"
)
def test_huge_content_range(hostile_registry: RegistryProcess) -> None:
    client = httpx.Client(base_url=hostile_registry.url, timeout=DEADLINE)
    repo = random_repo()
    location = start_upload(client, repo)
    for content_range in (f"0-{HUGE}", f"{HUGE}-{HUGE}"):
        response = client.patch(
            location, content=b"hello",
            headers={"Content-Range": content_range, "Content-Type": "application/octet-stream"},
        )
        assert_error(response, 416, "RANGE_INVALID")


# -- framing -----------------------------------------------------------------------------

MALFORMED = {
    "negative Content-Length": b"PATCH /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
    "non-numeric Content-Length": (
        b"PUT /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello"
    ),
    "huge Content-Length": (
        b"PUT /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: " + HUGE.encode() + b"\r\n\r\nhello"
    ),
    "two Content-Lengths": (
        b"PUT /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
    ),
    "Content-Length with chunked": (
        b"POST /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad chunk size": (
        b"PUT /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n"
    ),
    "junk after the body": (
        b"PUT /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\x00\x01GARBAGE junk\r\n\r\n"
    ),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\r\n\r\n",
    "too many headers": (
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
        + b"\r\n"
    ),
}


#: What Go's server takes (it never reads a body the handler leaves alone).
_GO_TAKES = {
    "Content-Length with chunked": "Transfer-Encoding wins over Content-Length: 200",
    "bad chunk size": "the unread chunked body is not parsed: 200",
    "too many headers": "no header count limit, only 1 MiB in all: 200",
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=deviates_on_distribution(_GO_TAKES[case]))
        if case in _GO_TAKES else case
        for case in sorted(MALFORMED)
    ],
)
def test_malformed_framing(hostile_registry: RegistryProcess, case: str) -> None:
    logged = len(hostile_registry.log_text().splitlines())
    response = exchange(hostile_registry, MALFORMED[case] + b"\r\n")
    codes = statuses(response)
    # A request before the junk may be answered first (distribution does); the
    # malformed part is a 4xx, and nothing is a 5xx.
    assert codes and all(code < 500 for code in codes), response[:300]
    assert 400 <= codes[-1] < 500, response[:300]
    if TARGET == "dockyard":  # its access-log line at most: no warning, no traceback
        lines = hostile_registry.log_text().splitlines()[logged:]
        assert not [line for line in lines if "dockyard.access" not in line], "\n".join(lines)
    # ...and it still serves everyone else.
    assert httpx.get(f"{hostile_registry.url}/v2/", timeout=DEADLINE).status_code == 200


def test_requests_pipelined_before_junk_are_answered(hostile_registry: RegistryProcess) -> None:
    """Valid requests and junk in one packet: each request its answer, then the 400."""
    client = httpx.Client(base_url=hostile_registry.url, timeout=DEADLINE)
    repo, data = random_repo(), b"{}"
    target = httpx.URL(start_upload(client, repo)).raw_path.decode()
    get = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
    put = (
        f"PUT {with_query(target, digest=digest_of(data))} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    junk = b"\x00\x01GARBAGE junk\r\n\r\n"
    for packet, expected in ((get + junk, [200, 400]), (get + get + junk, [200, 200, 400]),
                             (put + junk, [201, 400])):
        assert statuses(exchange(hostile_registry, packet)) == expected, packet[:60]
    # The PUT before the junk did its work.
    assert client.get(blob_path(repo, digest_of(data))).content == data


# -- header size -------------------------------------------------------------------------


def test_large_bearer_token_is_accepted(hostile_registry: RegistryProcess) -> None:
    """Tokens with certificate chains pass 8 KiB; distribution takes them (Go: 1 MiB)."""
    token = "e" * 40_000
    response = raw_request(
        hostile_registry.url, "GET", "/v2/", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.status_code


def test_oversized_header_is_431(hostile_registry: RegistryProcess) -> None:
    response = exchange(
        hostile_registry,
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + b"e" * (2 << 20)
        + b"\r\n\r\n",
    )
    assert status_of(response) == 431, response[:300]


@dockyard_only
def test_maxheaderbytes_is_configurable(registry_factory: RegistryFactory) -> None:
    server = registry_factory({"http": {"limits": {"maxheaderbytes": 16384}}})
    fits = raw_request(server.url, "GET", "/v2/", headers={"X-Big": "a" * 12_000})
    assert fits.status_code == 200
    refused = raw_request(server.url, "GET", "/v2/", headers={"X-Big": "a" * 20_000})
    assert refused.status_code == 431
    assert_no_traceback(server)


# -- slow and idle clients ---------------------------------------------------------------


@dockyard_only
def test_slowloris_headers_are_cut_off(registry_factory: RegistryFactory) -> None:
    """Headers a byte at a time: the connection is closed, others are served meanwhile."""
    server = registry_factory({"http": {"limits": {"headertimeout": "1s"}}})
    head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    deadline = time.monotonic() + DEADLINE
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        cut_off = False
        for byte in head:
            if time.monotonic() > deadline:
                break
            try:
                slow.send(bytes([byte]))
            except OSError:
                cut_off = True
                break
            if closed_by_server(slow):
                cut_off = True
                break
            assert httpx.get(f"{server.url}/v2/", timeout=DEADLINE).status_code == 200
            time.sleep(0.1)
        assert cut_off, f"a client still sending its headers after {DEADLINE}s was not cut off"
    assert httpx.get(f"{server.url}/v2/", timeout=DEADLINE).status_code == 200
    assert_no_traceback(server)


@dockyard_only
def test_idle_connections_cannot_crowd_out_clients(registry_factory: RegistryFactory) -> None:
    """Past maxconnections the oldest idle connections are closed to make room."""
    limit = 10
    server = registry_factory({"http": {"limits": {"maxconnections": limit}}})
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5 * limit)]
    try:
        # Partial request heads count as idle too.
        for sock in idle[::2]:
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            assert httpx.get(f"{server.url}/v2/", timeout=DEADLINE).status_code == 200
        deadline = time.monotonic() + DEADLINE
        while True:
            still_open = [s for s in idle if not closed_by_server(s)]
            if len(still_open) <= limit or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(still_open) <= limit, f"{len(still_open)} idle connections kept, cap {limit}"
    finally:
        for sock in idle:
            sock.close()
    assert_no_traceback(server)


@dockyard_only
def test_busy_connections_over_the_cap_get_503(registry_factory: RegistryFactory) -> None:
    """When every connection is inside a request, a new one is refused, not queued forever."""
    server = registry_factory({"http": {"limits": {"maxconnections": 2, "bodytimeout": "30s"}}})
    client = httpx.Client(base_url=server.url, timeout=DEADLINE)
    busy = []
    try:
        for _ in range(2):  # two uploads whose bodies are still coming
            location = httpx.URL(start_upload(client, random_repo()))
            sock = socket.create_connection(("127.0.0.1", server.port))
            target = location.raw_path.decode()
            sock.sendall(
                f"PATCH {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                "Content-Type: application/octet-stream\r\n\r\nabc".encode()
            )
            busy.append(sock)
        time.sleep(0.5)  # let both requests reach their handlers
        refused = exchange(server, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(refused) == 503, refused[:300]
    finally:
        for sock in busy:
            sock.close()
    assert httpx.get(f"{server.url}/v2/", timeout=DEADLINE).status_code == 200
    assert_no_traceback(server)


@dockyard_only
def test_stalled_body_is_abandoned(registry_factory: RegistryFactory) -> None:
    """A body that stops arriving ends the request with 400 BLOB_UPLOAD_INVALID."""
    server = registry_factory({"http": {"limits": {"bodytimeout": "1s"}}})
    client = httpx.Client(base_url=server.url, timeout=DEADLINE)
    location = httpx.URL(start_upload(client, random_repo()))
    response = exchange(
        server,
        f"PATCH {location.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\nabc".encode(),
        until=b"BLOB_UPLOAD_INVALID",
    )
    assert status_of(response) == 400, response[:300]
    assert b"BLOB_UPLOAD_INVALID" in response
    assert_no_traceback(server)


def upload_first_100(client: httpx.Client, repo: str, data: bytes) -> str:
    """An upload to ``repo`` holding the first 100 bytes of ``data``; its location."""
    first = patch_chunk(client, start_upload(client, repo), data[:100], start=0)
    assert first.status_code == 202, first.text
    return follow(client, first.headers["Location"])


def assert_upload_resumes_at_100(
    client: httpx.Client, repo: str, location: str, data: bytes
) -> None:
    """Nothing past the first 100 bytes was committed: the upload goes on from there and
    ends in ``data``."""
    status = client.get(location)
    assert status.status_code == 204 and status.headers["Range"] == "0-99", status.headers
    rest = patch_chunk(client, follow(client, status.headers["Location"]), data[100:], start=100)
    assert rest.status_code == 202, rest.text
    done = client.put(with_query(follow(client, rest.headers["Location"]), digest=digest_of(data)))
    assert done.status_code == 201, done.text
    assert client.get(blob_path(repo, digest_of(data))).content == data


@dockyard_only
def test_trickling_body_is_cut_off_and_the_upload_resumes(
    registry_factory: RegistryFactory,
) -> None:
    """A body that never stalls but trickles (20 bytes/s) is ended by minbodyrate, the
    connection is closed, and the upload goes on from its last committed offset."""
    server = registry_factory(
        {"http": {"limits": {"bodytimeout": "1s", "minbodyrate": 100}}}
    )
    client = httpx.Client(base_url=server.url, timeout=DEADLINE)
    repo, data = random_repo(), bytes(range(256)) * 8
    location = upload_first_100(client, repo, data)
    head = (
        f"PATCH {httpx.URL(location).raw_path.decode()} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(data) - 100}\r\nContent-Range: 100-{len(data) - 1}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    answer, closed = b"", False
    deadline = time.monotonic() + DEADLINE
    with socket.create_connection(("127.0.0.1", server.port)) as trickle:
        trickle.sendall(head)
        for byte in data[100:]:
            assert time.monotonic() < deadline, f"a trickling body was kept {DEADLINE}s"
            try:
                trickle.send(bytes([byte]))
            except OSError:
                closed = True
                break
            trickle.settimeout(0.05)  # also paces the trickle: ~20 bytes a second
            try:
                chunk = trickle.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            answer += chunk
        # The answer came; then the connection is closed, not kept for more trickling.
        while not closed and time.monotonic() < deadline:
            closed = closed_by_server(trickle)
            time.sleep(0.1)
    assert status_of(answer) == 400, answer[:300]
    assert b"BLOB_UPLOAD_INVALID" in answer and b"minbodyrate" in answer, answer
    assert closed, f"the trickling connection was still open after {DEADLINE}s"
    # Nothing of the trickled chunk was committed: the upload resumes at 100.
    assert_upload_resumes_at_100(client, repo, location, data)
    assert_no_traceback(server)


def test_a_client_that_closes_its_side_gets_its_answers(
    hostile_registry: RegistryProcess,
) -> None:
    """Requests sent whole, then the client's side of the connection closed (as ``nc
    -N`` does): each is answered; after a lone request the server closes the connection
    (the reads time out at DEADLINE, under the 60 s an idle connection is kept)."""
    request = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"

    def rest(sock: socket.socket, answers: int = 0) -> bytes:
        """Read until the server closes, or until ``answers`` answers came."""
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            if answers and len(statuses(received)) == answers:
                break
        return received

    with socket.create_connection(("127.0.0.1", hostile_registry.port),
                                  timeout=DEADLINE) as sock:
        sock.sendall(request * 3)  # pipelined
        sock.shutdown(socket.SHUT_WR)
        received = rest(sock, answers=3)
    assert statuses(received) == [200, 200, 200], received[:300]
    for pause in (0.0, 0.2):  # the first answer still going out, or the connection idle
        with socket.create_connection(("127.0.0.1", hostile_registry.port),
                                      timeout=DEADLINE) as sock:
            sock.sendall(request)
            first = sock.recv(65536)
            time.sleep(pause)
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            received = first + rest(sock)
        assert statuses(received) == [200, 200], (pause, received[:300])


@deviates_on_distribution("a chunked PATCH body with a bad chunk size is a 500")
def test_a_bad_chunk_in_an_upload_body_is_a_400_and_the_upload_resumes(
    hostile_registry: RegistryProcess,
) -> None:
    """A chunked PATCH whose framing breaks mid-body (a chunk size that is not hex) is
    answered 400 at once: not after the body timeout (60 s by default, past DEADLINE:
    aiohttp's parser did not tell the body, so the handler waited for the rest). Nothing
    of the broken request is committed, and the upload goes on from where it was."""
    client = httpx.Client(base_url=hostile_registry.url, timeout=DEADLINE)
    repo, data = random_repo(), bytes(range(256)) * 4
    location = upload_first_100(client, repo, data)
    broken = (
        f"PATCH {httpx.URL(location).raw_path.decode()} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n"
    ).encode()
    codes = statuses(exchange(hostile_registry, broken))
    assert codes and all(400 <= code < 500 for code in codes), codes
    assert_upload_resumes_at_100(client, repo, location, data)


@dockyard_only
def test_unread_download_is_abandoned(registry_factory: RegistryFactory) -> None:
    """A client that stops reading a blob is cut off; one that hangs up leaves no trace."""
    server = registry_factory(
        {"log": {"level": "debug"}, "http": {"limits": {"bodytimeout": "1s"}}}
    )
    client = httpx.Client(base_url=server.url, timeout=DEADLINE)
    repo, data = random_repo(), bytes(range(256)) * (128 << 10)  # 32 MiB
    digest = push_blob(client, repo, data)
    request = f"GET {blob_path(repo, digest)} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.socket() as hangs_up:
        hangs_up.connect(("127.0.0.1", server.port))
        hangs_up.sendall(request)
        assert hangs_up.recv(65536).startswith(b"HTTP/1.1 200")
    with socket.socket() as stalls:
        stalls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalls.connect(("127.0.0.1", server.port))
        stalls.sendall(request)
        received = stalls.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
        # Read nothing until the server says it gave up (the data already in the
        # buffers can still be read after a reset, so the socket cannot tell).
        deadline = time.monotonic() + DEADLINE
        while "client read nothing" not in server.log_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"a client reading nothing for {DEADLINE}s was kept")
            time.sleep(0.2)
        stalls.settimeout(DEADLINE)
        while True:
            try:
                chunk = stalls.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    assert len(received) < len(data), "the whole blob arrived: the server did not give up"
    assert httpx.get(f"{server.url}/v2/", timeout=DEADLINE).status_code == 200
    assert_no_traceback(server)
