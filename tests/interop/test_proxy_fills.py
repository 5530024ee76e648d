"""How the pull-through cache fills a blob: streamed to every waiting client while it
downloads, verified before it is kept, and not kept at all on read-only storage.

A small upstream in this process (on loopback) sends a blob's first part and then
waits for the test to let it finish, so the tests can see what clients and storage
hold while the download is in flight without timing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from tests.support.interop import Skopeo, random_repo
from tests.support.net import child_pids, wait_until
from tests.support.proxy import (
    V2,
    blob_file,
    docker_ref,
    layer_link,
    proxy_config,
    push,
    start_upstream,
    upstream_manifest,
)
from tests.support.servers import RegistryProcess

from .conftest import Images, ServerFactory

pytestmark = pytest.mark.interop

# What the upstream sends before it waits (more than the 1 MiB the proxy holds back).
FIRST_PART = 3 << 20
# A bound on a broken test, not a measurement: the gate opens long before.
GATE_TIMEOUT = 60.0


@dataclass
class Gated:
    """The upstream's blobs (by digest, under any repository), the gate its downloads
    wait for after :data:`FIRST_PART` bytes, and the requests it answered."""

    url: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict)
    gate: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)


class _GatedServer(ThreadingHTTPServer):
    def __init__(self, state: Gated) -> None:
        super().__init__(("127.0.0.1", 0), _GatedHandler)
        self.state = state


class _GatedHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = cast(_GatedServer, self.server).state
        state.requests.append(f"{self.command} {self.path}")
        body = b"{}" if self.path == "/v2/" else state.blobs.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(body[:FIRST_PART])
        self.wfile.flush()
        if len(body) > FIRST_PART:
            state.gate.wait(GATE_TIMEOUT)
            self.wfile.write(body[FIRST_PART:])

    do_HEAD = do_GET


@pytest.fixture
def gated() -> Iterator[Gated]:
    state = Gated()
    server = _GatedServer(state)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.gate.set()
    server.shutdown()
    server.server_close()


def _read_at_least(chunks: Iterator[bytes], count: int) -> bytes:
    received = b""
    while len(received) < count:
        received += next(chunks)
    return received


def test_a_miss_is_streamed_to_every_client_while_it_downloads(
    gated: Gated, server_factory: ServerFactory
) -> None:
    """Clients get the bytes as they arrive, before the upstream has sent them all; the
    blob is visible in storage only once it is complete and verified; a client that
    leaves mid-way does not stop the download the others share."""
    data = os.urandom(FIRST_PART + (3 << 20))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    gated.blobs[digest] = data
    proxy = server_factory("dockyard", overrides={"proxy": {"remoteurl": gated.url}})
    url = f"{proxy.url}/v2/streamed/blobs/{digest}"
    timeout = httpx.Timeout(GATE_TIMEOUT)
    with httpx.Client(timeout=timeout) as leaver, httpx.Client(timeout=timeout) as stayer:
        with leaver.stream("GET", url) as left:
            assert left.status_code == 200
            assert left.headers["Content-Length"] == str(len(data))
            head = _read_at_least(left.iter_raw(), 1 << 20)  # the upstream is still waiting
            assert data.startswith(head)
        # The leaver has gone; a second client joins the same download mid-way.
        with stayer.stream("GET", url) as stays:
            chunks = stays.iter_raw()
            received = _read_at_least(chunks, 2 << 20)
            assert not gated.gate.is_set()
            assert not blob_file(proxy, digest).exists()  # not visible before verified
            assert not layer_link(proxy, "streamed", digest).exists()
            gated.gate.set()
            received += b"".join(chunks)
        assert received == data
    wait_until(lambda: blob_file(proxy, digest).exists(), what="the blob stored", deadline=30)
    assert blob_file(proxy, digest).read_bytes() == data
    claims = proxy.root / "proxy-fills" / "streamed" / "sha256"
    wait_until(lambda: not list(claims.glob("*")), what="the fill's claim removed", deadline=30)
    assert [r for r in gated.requests if r.startswith("GET") and digest in r] == [
        f"GET /v2/streamed/blobs/{digest}"
    ]
    assert "Traceback" not in proxy.log_text()


def test_a_big_blob_of_wrong_bytes_is_broken_off_and_not_kept(
    gated: Gated, server_factory: ServerFactory
) -> None:
    """Past the bytes held back, a wrong blob's response has started: it is broken off
    before its end (the client never has all of it) and nothing is cached."""
    claimed = "sha256:" + hashlib.sha256(b"the real content").hexdigest()
    size = FIRST_PART + (2 << 20)
    gated.blobs[claimed] = os.urandom(size)
    proxy = server_factory("dockyard", overrides={"proxy": {"remoteurl": gated.url}})
    with httpx.Client(base_url=proxy.url, timeout=GATE_TIMEOUT) as client:
        for _ in range(2):  # the second pull asks the upstream again: nothing was kept
            gated.gate.clear()
            with client.stream("GET", f"/v2/lies/blobs/{claimed}") as response:
                assert response.status_code == 200
                chunks = response.iter_raw()
                received = len(_read_at_least(chunks, 1 << 20))
                gated.gate.set()
                with pytest.raises(httpx.TransportError):  # reset or cut short
                    for chunk in chunks:
                        received += len(chunk)
            assert received < size
    assert len([r for r in gated.requests if r == f"GET /v2/lies/blobs/{claimed}"]) == 2
    assert not blob_file(proxy, claimed).exists()
    assert not layer_link(proxy, "lies", claimed).exists()
    assert not list((proxy.root / V2 / "repositories" / "lies").glob("_uploads/*/data"))
    assert "Traceback" not in proxy.log_text()


def test_workers_share_one_download_through_storage(
    gated: Gated, server_factory: ServerFactory
) -> None:
    """--workers 2: while one worker downloads a blob (the upstream holding back its
    end), a request on the other worker waits for it rather than downloading again;
    both clients get the blob, the upstream sees one download."""
    data = os.urandom(FIRST_PART + (1 << 20))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    gated.blobs[digest] = data
    proxy = server_factory(
        "dockyard",
        overrides={"proxy": {"remoteurl": gated.url}},
        extra_args=["--workers", "2"],
    )
    assert proxy.pid is not None
    wait_until(lambda: len(child_pids(proxy.pid or 0)) == 2, what="2 workers", deadline=30)
    first, second = child_pids(proxy.pid)
    results: dict[str, bytes] = {}

    def pull(who: str) -> None:
        # A connection of its own, accepted by whichever worker is running.
        with httpx.Client(timeout=GATE_TIMEOUT, headers={"Connection": "close"}) as client:
            results[who] = client.get(f"{proxy.url}/v2/shared/blobs/{digest}").content

    threads = [threading.Thread(target=pull, args=(who,)) for who in ("first", "second")]
    stopped: int | None = second
    os.kill(second, signal.SIGSTOP)
    try:
        threads[0].start()
        wait_until(
            lambda: f"GET /v2/shared/blobs/{digest}" in gated.requests,
            what="the first worker's download",
            deadline=30,
        )
        os.kill(second, signal.SIGCONT)
        os.kill(first, signal.SIGSTOP)
        stopped = first
        threads[1].start()
        wait_until(
            lambda: "is being downloaded by another process" in proxy.log_text(),
            what="the second worker to wait for the first one's download",
            deadline=30,
        )
        os.kill(first, signal.SIGCONT)
        stopped = None
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        gated.gate.set()
        for thread in threads:
            thread.join(GATE_TIMEOUT)
    assert results == {"first": data, "second": data}
    assert gated.requests.count(f"GET /v2/shared/blobs/{digest}") == 1
    assert "Traceback" not in proxy.log_text()


@pytest.fixture
def upstream(server_factory: ServerFactory, tmp_path: Path) -> RegistryProcess:
    return start_upstream(server_factory, tmp_path)


def test_read_only_storage_passes_pulls_through_and_expires_nothing(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """With ``storage.maintenance.readonly`` the cache writes nothing: misses are served
    from the upstream (verified, identical digests) without being stored, and content
    whose expiry has passed stays until writes are allowed again."""
    cached, uncached = random_repo("proxy"), random_repo("proxy")
    push(skopeo, images.single.ref, upstream, cached, "v1")
    push(skopeo, images.amd64.ref, upstream, uncached, "v1")
    config = proxy_config(upstream.url, ttl="1h")
    first = server_factory("dockyard", overrides=config)
    skopeo.copy(docker_ref(first, cached, "v1"), f"oci:{tmp_path / 'cached'}:v1")
    first.stop()
    layer = json.loads(upstream_manifest(upstream, cached, "v1").content)["layers"][0]["digest"]
    state_path = first.root / "scheduler-state.json"
    state = json.loads(state_path.read_text())
    for entry in state.values():  # all past their expiry now
        entry["ExpiryData"] = "2020-01-01T00:00:00Z"
    state_path.write_text(json.dumps(state))
    before = sorted(p.relative_to(first.root) for p in first.root.rglob("*"))

    read_only = server_factory(
        "dockyard",
        root=first.root,
        overrides={**config, "storage": {"maintenance": {"readonly": {"enabled": True}}}},
    )
    expected = upstream_manifest(upstream, uncached, "v1")
    out = tmp_path / "uncached"
    skopeo.copy(docker_ref(read_only, uncached, "v1"), f"oci:{out}:v1")
    assert skopeo.raw_manifest(docker_ref(read_only, uncached, "v1")) == expected.content
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == expected.headers["Docker-Content-Digest"]
    skopeo.copy(docker_ref(read_only, cached, "v1"), f"oci:{tmp_path / 'again'}:v1")
    read_only.stop()
    assert sorted(p.relative_to(first.root) for p in first.root.rglob("*")) == before
    assert json.loads(state_path.read_text()) == state

    # Writable again: the expired entries are acted on at once.
    writable = server_factory("dockyard", root=first.root, overrides=config)
    wait_until(
        lambda: not layer_link(writable, cached, layer).exists(),
        what="the expired layer to be removed once writes are allowed",
        deadline=30,
    )
    assert "Traceback" not in read_only.log_text() + writable.log_text()
