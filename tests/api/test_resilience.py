"""Uploads that survive the world: other processes, crashes, broken clients (issue 2).

Every test drives real server processes over loopback:

* one upload whose chunks alternate between two instances on one storage root, and
  chunks forced onto each worker of ``--workers 2`` in turn (the other one stopped);
* the server SIGKILLed while a chunk is streaming in, restarted, the upload resumed
  from the last acknowledged Location, from a status request, or from the bytes on disk;
* clients that vanish or cut their body short: nothing becomes visible, the upload
  resumes from the last acknowledged offset;
* after all of it, every file under ``blobs/`` is a complete blob whose content matches
  its path (:func:`assert_blobs_consistent`).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.support.api import (
    TARGET,
    RawResponse,
    assert_error,
    blob_path,
    deviates_on_distribution,
    digest_of,
    follow,
    patch_chunk,
    random_repo,
    start_upload,
    upload_range,
    upload_uuid,
    uploads_path,
    with_query,
)
from tests.support.layout import DirectoryFiles, check_layout
from tests.support.net import child_pids

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

MiB = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}

dockyard_only = pytest.mark.skipif(
    TARGET != "dockyard", reason="dockyard's own: --workers / status without _state"
)
_RESUME_DEVIATION = (
    "the bytes of an interrupted chunk stay in the upload; the next request with the "
    "last acknowledged _state fails (offset mismatch) instead of resuming there"
)


# -- helpers -----------------------------------------------------------------------------


def rebase(location: str, server: RegistryProcess) -> str:
    """``location`` (absolute or relative) sent to ``server`` instead."""
    parts = urlsplit(location)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return urljoin(server.url, target)


def request_target(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def v2_root(server: RegistryProcess) -> Path:
    return server.root / "docker/registry/v2"


def upload_data_file(server: RegistryProcess, repo: str, location: str) -> Path:
    return v2_root(server) / "repositories" / repo / "_uploads" / upload_uuid(location) / "data"


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or condition}")


def assert_blobs_consistent(server: RegistryProcess) -> int:
    """Every file under blobs/ is ``<alg>/<hh>/<hex>/data`` holding exactly that content,
    and every link names a stored blob; returns how many blobs there are."""
    report = check_layout(DirectoryFiles(server.root))
    assert not report.problems, report.problems
    return report.blobs


def start_partial_request(
    server: RegistryProcess,
    method: str,
    location: str,
    headers: dict[str, str],
    body_part: bytes,
) -> socket.socket:
    """Send the request line, headers and the first part of the body; leave it hanging."""
    lines = [
        f"{method} {request_target(location)} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body_part)
    return sock


def read_response(sock: socket.socket, method: str) -> RawResponse | None:
    """The response on ``sock`` (read to EOF), or None if the server closed without one."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return None
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = [line.split(":", 1) for line in header_lines if ":" in line]
    headers = httpx.Headers([(k.strip(), v.strip()) for k, v in pairs])
    if "content-length" in headers:
        content = content[: int(headers["content-length"])]
    return RawResponse(int(status_line.split(" ")[1]), "", headers, content, method)


def truncated_request(
    server: RegistryProcess, method: str, location: str, headers: dict[str, str], sent: bytes
) -> RawResponse | None:
    """Announce more than ``sent``, send it, close our side, read what the server says."""
    sock = start_partial_request(server, method, location, headers, sent)
    try:
        sock.shutdown(socket.SHUT_WR)
        return read_response(sock, method)
    finally:
        sock.close()


def assert_refused(response: RawResponse | None) -> None:
    """A truncated body is refused with a 4xx -- or, by distribution, the connection
    closes unanswered (dockyard answers a client that half-closed its side)."""
    if response is None:
        assert TARGET != "dockyard", "connection closed without a response"
        return
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if TARGET == "dockyard":
        assert_error(response, 400, "BLOB_UPLOAD_INVALID")


def push_chunks(
    client: httpx.Client, location: str, chunks: list[bytes], offset: int = 0
) -> tuple[str, int]:
    """PATCH ``chunks`` in order from ``offset``; the last Location and the new offset."""
    for chunk in chunks:
        response = patch_chunk(client, location, chunk, start=offset)
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == upload_range(offset)
        location = follow(client, response.headers["Location"])
    return location, offset


def finish(client: httpx.Client, location: str, data: bytes, last: bytes = b"",
           algorithm: str = "sha256") -> str:
    digest = digest_of(data, algorithm)
    response = client.put(with_query(location, digest=digest), content=last, headers=OCTETS)
    assert response.status_code == 201, response.text
    # May be the canonical (sha256) digest of the same bytes, as the original documents.
    assert response.headers["Docker-Content-Digest"] in (digest, digest_of(data))
    return digest


def assert_blob(client: httpx.Client, repo: str, digest: str, data: bytes) -> None:
    response = client.get(blob_path(repo, digest))
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["Docker-Content-Digest"] in (digest, digest_of(data))


def assert_invisible(client: httpx.Client, repo: str, data: bytes) -> None:
    for algorithm in ("sha256", "sha512"):
        assert client.head(blob_path(repo, digest_of(data, algorithm))).status_code == 404


# -- stateless instances ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_chunks_alternate_between_two_instances(
    registry_factory: RegistryFactory, client_factory: ClientFactory, algorithm: str
) -> None:
    """Two registries, one storage root, one secret: every chunk goes to the other one."""
    a = registry_factory()
    b = registry_factory(overrides={"storage": {"filesystem": {"rootdirectory": str(a.root)}}})
    servers = [a, b]
    clients = [client_factory(a), client_factory(b)]
    repo = random_repo("instances")
    chunks = [os.urandom(n) for n in (MiB + 3, 5, 300_000, 2 * MiB, 17, 1)]
    data = b"".join(chunks)

    location = start_upload(clients[0], repo)
    offset = 0
    for i, chunk in enumerate(chunks):
        this = (i + 1) % 2  # the POST went to a: the first chunk goes to b
        other = 1 - this
        response = patch_chunk(clients[this], rebase(location, servers[this]), chunk,
                               start=offset)
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == upload_range(offset)
        location = follow(clients[this], response.headers["Location"])
        # The other instance knows where the upload stands.
        status = clients[other].get(rebase(location, servers[other]))
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == upload_range(offset)
    last = len(chunks) % 2  # the instance that did not take the last chunk
    digest = finish(clients[last], rebase(location, servers[last]), data, algorithm=algorithm)
    for client in clients:
        assert_blob(client, repo, digest, data)
    assert assert_blobs_consistent(a) >= 1


def _workers(server: RegistryProcess, count: int) -> list[int]:
    assert server.pid is not None
    found: list[int] = []

    def ready() -> bool:
        nonlocal found
        found = child_pids(server.pid)  # type: ignore[arg-type]
        return len(found) == count

    wait_for(ready, what=f"{count} worker processes")
    return found


def _rchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def _fresh(server: RegistryProcess) -> httpx.Client:
    """A client whose every request opens a new TCP connection (no keep-alive)."""
    return httpx.Client(
        base_url=server.url, timeout=60,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"Connection": "close"},
    )


@dockyard_only
def test_chunks_forced_onto_each_worker_in_turn(registry_factory: RegistryFactory) -> None:
    """--workers 2: with one worker stopped, the other must take the chunk; then swap."""
    server = registry_factory(extra_args=["--workers", "2"])
    workers = _workers(server, 2)
    repo = random_repo("workers")
    chunks = [os.urandom(n) for n in (2 * MiB, 2 * MiB + 1, 3 * MiB, 2 * MiB + 5)]
    data = b"".join(chunks)
    served_by: list[int] = []
    stopped: int | None = None

    def only(pid: int) -> None:
        nonlocal stopped
        other = workers[1 - workers.index(pid)]
        os.kill(other, signal.SIGSTOP)
        stopped = other
        os.kill(pid, signal.SIGCONT)

    try:
        with _fresh(server) as client:
            only(workers[0])
            location = start_upload(client, repo)
            offset = 0
            for i, chunk in enumerate(chunks):
                pid = workers[(i + 1) % 2]
                only(pid)
                before = {w: _rchar(w) for w in workers}
                location, offset = push_chunks(client, location, [chunk], offset)
                grown = {w: _rchar(w) - before[w] for w in workers}
                # The chunk's bytes went through the running worker, none through the other.
                assert grown[pid] >= len(chunk), grown
                assert grown[workers[1 - workers.index(pid)]] == 0, grown
                served_by.append(pid)
            only(workers[len(chunks) % 2])
            digest = finish(client, location, data)
            served_by.append(workers[len(chunks) % 2])
            for w in workers:
                os.kill(w, signal.SIGCONT)
            stopped = None
            assert_blob(client, repo, digest, data)
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
    assert served_by == [workers[1], workers[0], workers[1], workers[0], workers[0]]
    assert _workers(server, 2) == workers  # nobody crashed or was restarted


@dockyard_only
def test_many_chunked_uploads_over_two_workers(registry_factory: RegistryFactory) -> None:
    """Interleaved chunked uploads over fresh connections; all land, both workers work."""
    server = registry_factory(extra_args=["--workers", "2"])
    workers = _workers(server, 2)
    before = {w: _rchar(w) for w in workers}
    repo = random_repo("many")
    errors: list[BaseException] = []
    results: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def uploader(seed: int) -> None:
        try:
            with _fresh(server) as client:
                for n in range(5):
                    chunks = [os.urandom(64 * 1024 + seed * 7 + n + k) for k in range(5)]
                    data = b"".join(chunks)
                    location, _ = push_chunks(client, start_upload(client, repo), chunks)
                    digest = finish(client, location, data)
                    with lock:
                        results.append((digest, data))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 20
    with _fresh(server) as client:
        for digest, data in results:
            assert_blob(client, repo, digest, data)
    grown = {w: _rchar(w) - before[w] for w in workers}
    assert all(g >= 64 * 1024 for g in grown.values()), grown  # both took chunk bodies
    assert _workers(server, 2) == workers
    assert_blobs_consistent(server)


# -- crashes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resume",
    [
        "location",
        "status",
        pytest.param("disk", marks=dockyard_only),
    ],
)
@deviates_on_distribution(_RESUME_DEVIATION)
def test_sigkill_mid_patch_then_resume(
    registry_factory: RegistryFactory, client_factory: ClientFactory, resume: str
) -> None:
    """kill -9 while a chunk streams in; restart; resume; the blob is exactly right.

    ``location``: PATCH again at the last acknowledged Location. ``status``: ask that
    Location where the upload stands (GET) and follow the answer. ``disk``: ask by uuid
    alone (no ``_state``), which reports the last acknowledged offset too: the bytes
    that reached storage past it were never acknowledged, and are cut off.
    """
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("crash")
    acked_chunks = [os.urandom(MiB), os.urandom(MiB + 7)]
    interrupted = os.urandom(4 * MiB)
    tail = os.urandom(12345)
    data = b"".join([*acked_chunks, interrupted, tail])

    location = start_upload(client, repo)
    location, acked = push_chunks(client, location, acked_chunks)
    data_file = upload_data_file(server, repo, location)
    assert file_size(data_file) == acked

    sock = start_partial_request(
        server, "PATCH", location,
        {**OCTETS, "Content-Length": str(len(interrupted)),
         "Content-Range": f"{acked}-{acked + len(interrupted) - 1}"},
        interrupted[: 2 * MiB],
    )
    try:
        # The server is writing the chunk: some of it is on disk, unacknowledged.
        wait_for(lambda: file_size(data_file) >= acked + MiB, what="the chunk hitting disk")
        server.kill()
    finally:
        sock.close()
    on_disk = file_size(data_file)
    assert acked < on_disk <= acked + 2 * MiB
    assert data_file.read_bytes()[acked:] == interrupted[: on_disk - acked]

    server.start()
    assert_invisible(client, repo, data)
    assert_invisible(client, repo, data[:on_disk])

    if resume == "location":
        location, offset = push_chunks(client, location, [interrupted], acked)
    elif resume == "status":
        status = client.get(location)
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == upload_range(acked)
        location = follow(client, status.headers["Location"])
        location, offset = push_chunks(client, location, [interrupted], acked)
    else:
        status = client.get(f"{uploads_path(repo)}{upload_uuid(location)}")
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == upload_range(acked)
        location = follow(client, status.headers["Location"])
        location, offset = push_chunks(client, location, [interrupted], acked)
    assert offset == acked + len(interrupted)
    digest = finish(client, location, data, last=tail)
    assert_blob(client, repo, digest, data)
    # The upload is gone once finished (its files are removed in the background).
    wait_for(lambda: not data_file.parent.exists(), what="the finished upload's removal")
    assert assert_blobs_consistent(server) == 1


def test_sigkill_between_chunks_then_resume(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """kill -9 between two acknowledged chunks: after restart the upload goes on unchanged."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("crash")
    chunks = [os.urandom(n) for n in (MiB, 7, 2 * MiB)]
    data = b"".join(chunks)
    location, offset = push_chunks(client, start_upload(client, repo), chunks[:2])
    server.restart(hard=True)
    location, offset = push_chunks(client, location, chunks[2:], offset)
    server.restart(hard=True)
    digest = finish(client, location, data)
    assert_blob(client, repo, digest, data)
    assert_blobs_consistent(server)


@dockyard_only
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("damage", ["states empty", "states lost", "claim empty",
                                    "startedat empty"])
def test_power_cut_leftovers_of_unsynced_bookkeeping(
    registry_factory: RegistryFactory, client_factory: ClientFactory,
    damage: str, algorithm: str,
) -> None:
    """An upload's bookkeeping (``startedat``, hash states, claims) is renamed into place
    without an fsync; only the data is fsynced, before the hash states that vouch for it.
    A kill -9 keeps the page cache, so those files are whole; a power cut may lose them
    or leave them empty. Each such leftover, made here by hand after a kill -9, leaves
    the upload resumable and its blob exactly right."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("power")
    chunks = [os.urandom(n) for n in (MiB, 3 * MiB + 5, 12345)]
    data = b"".join(chunks)
    location, acked = push_chunks(client, start_upload(client, repo), chunks[:2])
    upload_dir = upload_data_file(server, repo, location).parent
    server.kill()
    states = [upload_dir / "hashstates" / alg / str(acked) for alg in ("sha256", "sha512")]
    assert all(state.is_file() for state in states)
    if damage == "states empty":
        for state in states:
            state.write_bytes(b"")
    elif damage == "states lost":
        for state in states:
            state.unlink()
    elif damage == "claim empty":
        (upload_dir / "claims" / str(acked)).mkdir(parents=True, exist_ok=True)
        (upload_dir / "claims" / str(acked) / "0123456789abcdef").write_bytes(b"")
    else:
        (upload_dir / "startedat").write_bytes(b"")
    server.start()

    if damage == "states lost":
        # Back to the previous state: the client is told where the upload stands.
        previous = len(chunks[0])
        response = patch_chunk(client, location, chunks[2], start=acked)
        assert_error(response, 416, "RANGE_INVALID")
        status = client.get(location)
        assert status.headers["Range"] == upload_range(previous)
        location, acked = push_chunks(
            client, follow(client, status.headers["Location"]), chunks[1:2], previous)
    location, _ = push_chunks(client, location, chunks[2:], acked)
    digest = finish(client, location, data, algorithm=algorithm)
    assert_blob(client, repo, digest, data)
    assert assert_blobs_consistent(server) == 1


def test_crash_between_final_move_and_retire_leaves_an_unknown_upload(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """A final PUT moves the data into blobs/, then retires the upload (removes startedat).

    Killed in between (found by the crash campaign, tests/campaigns), the upload kept its
    startedat but not its data, and its status said ``Range: 0-0``, behind bytes it had
    acknowledged. It is finished: 404 BLOB_UPLOAD_UNKNOWN, and the client starts again.
    The state the crash leaves is made here by restoring startedat and the hash states
    after the PUT.
    """
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("crash")
    first, last = os.urandom(1000), os.urandom(500)
    location, acked = push_chunks(client, start_upload(client, repo), [first])
    upload_dir = upload_data_file(server, repo, location).parent
    saved = {
        path.relative_to(upload_dir): path.read_bytes()
        for path in upload_dir.rglob("*")
        if path.is_file() and path.name != "data" and "claims" not in path.parts
    }
    assert Path("startedat") in saved
    digest = finish(client, location, first + last, last=last)
    wait_for(lambda: not upload_dir.exists(), what="the finished upload's removal")
    for name, content in saved.items():
        (upload_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (upload_dir / name).write_bytes(content)

    code = "BLOB_UPLOAD_UNKNOWN" if TARGET == "dockyard" else "BLOB_UPLOAD_INVALID"
    assert_error(client.get(location), 404, code)
    assert_error(patch_chunk(client, location, last, start=acked), 404, code)
    assert_blob(client, repo, digest, first + last)
    assert assert_blobs_consistent(server) == 1


# -- clients that go away ----------------------------------------------------------------


@deviates_on_distribution(_RESUME_DEVIATION)
def test_client_disconnects_mid_patch(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """Half a chunk then a closed socket: nothing visible, the upload resumes where it was."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("gone")
    first = os.urandom(MiB + 1)
    second = os.urandom(3 * MiB)
    data = first + second
    location, acked = push_chunks(client, start_upload(client, repo), [first])
    data_file = upload_data_file(server, repo, location)

    sock = start_partial_request(
        server, "PATCH", location,
        {**OCTETS, "Content-Length": str(len(second)),
         "Content-Range": f"{acked}-{acked + len(second) - 1}"},
        second[: len(second) // 2],
    )
    wait_for(lambda: file_size(data_file) > acked, what="the chunk hitting disk")
    sock.close()

    # The server notices and cuts the upload back to what it acknowledged.
    wait_for(lambda: file_size(data_file) == acked, what="the partial chunk to be cut off")
    assert_invisible(client, repo, data)
    assert_invisible(client, repo, first + second[: len(second) // 2])
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == upload_range(acked)
    if TARGET == "dockyard":
        by_uuid = client.get(f"{uploads_path(repo)}{upload_uuid(location)}")
        assert by_uuid.headers["Range"] == upload_range(acked)

    location, _ = push_chunks(client, follow(client, status.headers["Location"]), [second],
                              acked)
    digest = finish(client, location, data)
    assert_blob(client, repo, digest, data)
    assert assert_blobs_consistent(server) == 1


@deviates_on_distribution(_RESUME_DEVIATION)
def test_client_disconnects_mid_final_put(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """Half of the last chunk of a PUT, then gone: no blob, and the upload still finishes."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("gone")
    first, last = os.urandom(MiB), os.urandom(2 * MiB)
    data = first + last
    location, acked = push_chunks(client, start_upload(client, repo), [first])
    data_file = upload_data_file(server, repo, location)
    sock = start_partial_request(
        server, "PUT", with_query(location, digest=digest_of(data)),
        {**OCTETS, "Content-Length": str(len(last))}, last[: MiB + 10],
    )
    wait_for(lambda: file_size(data_file) > acked, what="the chunk hitting disk")
    sock.close()
    wait_for(lambda: file_size(data_file) == acked, what="the partial chunk to be cut off")
    assert_invisible(client, repo, data)
    digest = finish(client, location, data, last=last)
    assert_blob(client, repo, digest, data)
    assert assert_blobs_consistent(server) == 1


# -- truncated bodies --------------------------------------------------------------------


@deviates_on_distribution(_RESUME_DEVIATION)
def test_truncated_patch_is_refused_and_leaves_the_upload_resumable(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("short")
    first, second = os.urandom(1000), os.urandom(2 * MiB)
    location, acked = push_chunks(client, start_upload(client, repo), [first])
    response = truncated_request(
        server, "PATCH", location,
        {**OCTETS, "Content-Length": str(len(second)),
         "Content-Range": f"{acked}-{acked + len(second) - 1}"},
        second[:MiB],
    )
    assert_refused(response)
    wait_for(lambda: file_size(upload_data_file(server, repo, location)) == acked,
             what="the partial chunk to be cut off")
    status = client.get(location)
    assert status.headers["Range"] == upload_range(acked)
    location, _ = push_chunks(client, location, [second], acked)
    digest = finish(client, location, first + second)
    assert_blob(client, repo, digest, first + second)


@pytest.mark.parametrize("chunked_before", [False, True])
def test_truncated_final_put_commits_nothing(
    registry_factory: RegistryFactory, client_factory: ClientFactory, chunked_before: bool
) -> None:
    """PUT ?digest= with Content-Length N and fewer bytes: 400, no blob, nothing under blobs/."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("short")
    first, last = os.urandom(777), os.urandom(MiB + 5)
    data = first + last if chunked_before else last
    location = start_upload(client, repo)
    if chunked_before:
        location, _ = push_chunks(client, location, [first])
    # Even a digest that matches the bytes that did arrive must not publish them.
    for digest in (digest_of(data), digest_of(data[: len(data) - MiB])):
        response = truncated_request(
            server, "PUT", with_query(location, digest=digest),
            {**OCTETS, "Content-Length": str(len(last))}, last[: len(last) - MiB],
        )
        assert_refused(response)
        assert_invisible(client, repo, data)
        assert_invisible(client, repo, data[: len(data) - MiB])
    assert assert_blobs_consistent(server) == 0


@deviates_on_distribution("POST ?digest= is not implemented (202, body ignored)")
def test_truncated_monolithic_post_commits_nothing(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("short")
    data = os.urandom(2 * MiB)
    for digest in (digest_of(data), digest_of(data[:MiB])):
        response = truncated_request(
            server, "POST", with_query(uploads_path(repo), digest=digest),
            {**OCTETS, "Content-Length": str(len(data))}, data[:MiB],
        )
        assert_refused(response)
    assert_invisible(client, repo, data)
    assert_invisible(client, repo, data[:MiB])
    assert assert_blobs_consistent(server) == 0


@deviates_on_distribution("answers 499 UNKNOWN 'client disconnected'")
def test_truncated_body_is_answered_with_400(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    client = client_factory(server)
    location = start_upload(client, random_repo("short"))
    for size, sent in ((2 * MiB, MiB), (100, 50)):
        response = truncated_request(
            server, "PATCH", location, {**OCTETS, "Content-Length": str(size)}, b"x" * sent
        )
        assert response is not None, "connection closed without a response"
        assert_error(response, 400, "BLOB_UPLOAD_INVALID")


# -- odd upload ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "upload_id", ["abc=", "a.b", "a..b", "_", "-", "x" * 129, "x" * 1000, "%3D%3D", "a%20b"]
)
def test_odd_upload_ids_are_unknown_uploads(client: httpx.Client, upload_id: str) -> None:
    """Ids no registry mints are unknown uploads (4xx), never a storage error (5xx).

    ``abc=`` once passed the upload-id check and failed the driver's path check: 503.
    """
    repo = random_repo("ids")
    target = f"{uploads_path(repo)}{upload_id}"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        url = with_query(target, digest=digest_of(b"x")) if method == "PUT" else target
        response = client.request(method, url, content=b"x" if method != "GET" else None,
                                  headers=OCTETS)
        assert response.status_code in (400, 404), (method, response.status_code,
                                                     response.text)
        if TARGET == "dockyard":  # distribution: 404 BLOB_UPLOAD_INVALID, or a plain 404
            code = "BLOB_UPLOAD_UNKNOWN" if response.status_code == 404 else "BLOB_UPLOAD_INVALID"
            assert_error(response, response.status_code, code)

