"""``health``: failing file, http, tcp and storage driver checks answer 503 on
``/debug/health`` (naming the failing check) and on the main listener, then recover."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.ops.conftest import DebugRegistry, DebugRegistryFactory
from tests.support.api import error_codes
from tests.support.backends import MotoServer, S3RegistryProcess, s3_params
from tests.support.net import free_port, wait_until

FAST = {"interval": "200ms"}


def health(registry: DebugRegistry) -> tuple[int, Any]:
    response = httpx.get(registry.debug_url + "/debug/health", timeout=5)
    assert response.headers["content-type"].startswith("application/json")
    return response.status_code, response.json()


def wait_for_health(registry: DebugRegistry, status: int, what: str) -> Any:
    """Wait until ``/debug/health`` answers ``status``; its body."""
    seen: list[Any] = []

    def reached() -> bool:
        code, body = health(registry)
        seen[:] = [body]
        return code == status

    wait_until(reached, what=what, deadline=20, log=registry.log_tail)
    return seen[0]


def assert_main_unavailable(registry: DebugRegistry) -> None:
    for method, path in (("GET", "/v2/"), ("GET", "/v2/_catalog"), ("HEAD", "/v2/")):
        response = httpx.request(method, registry.url + path, timeout=5)
        assert response.status_code == 503, (method, path, response.status_code)
        if method == "GET":
            assert error_codes(response) == ["UNAVAILABLE"]
            assert "/debug/health" in response.json()["errors"][0]["detail"]


@pytest.mark.parametrize("workers", [1, 2])
def test_file_check(
    debug_registry_factory: DebugRegistryFactory, tmp_path: Path, workers: int
) -> None:
    switch = tmp_path / "drain"
    registry = debug_registry_factory(
        {"health": {"file": [{"file": str(switch), **FAST}]}}, workers=workers)
    assert health(registry) == (200, {})
    switch.write_text("")
    assert wait_for_health(registry, 503, "file check failing") == {str(switch): "file exists"}
    # Every worker runs the checks: every connection is refused service.
    for _ in range(4):
        assert_main_unavailable(registry)
    switch.unlink()
    assert wait_for_health(registry, 200, "file check passing") == {}
    wait_until(lambda: httpx.get(registry.url + "/v2/").status_code == 200,
               what="main listener back", deadline=10)


class _Downstream(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_HEAD(self) -> None:
        assert self.headers.get("X-Probe") == "dockyard"
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def downstream() -> Iterator[tuple[str, type[_Downstream]]]:
    handler = type("Downstream", (_Downstream,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ping", handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_check_with_threshold(
    debug_registry_factory: DebugRegistryFactory, downstream: tuple[str, type[_Downstream]]
) -> None:
    uri, handler = downstream
    registry = debug_registry_factory({"health": {"http": [{
        "uri": uri, "headers": {"X-Probe": ["dockyard"]}, "statuscode": 200,
        "timeout": "2s", "threshold": 2, **FAST,
    }]}})
    assert health(registry) == (200, {})
    handler.status = 500
    body = wait_for_health(registry, 503, "http check failing")
    assert body == {uri: "downstream service returned unexpected status: 500"}
    assert_main_unavailable(registry)
    handler.status = 200
    assert wait_for_health(registry, 200, "http check passing") == {}


def test_tcp_check(debug_registry_factory: DebugRegistryFactory) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    addr = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        registry = debug_registry_factory(
            {"health": {"tcp": [{"addr": addr, "timeout": "1s", **FAST}]}})
        assert health(registry) == (200, {})
    finally:
        listener.close()
    assert wait_for_health(registry, 503, "tcp check failing") == {
        addr: f"connection to {addr} failed"}
    assert_main_unavailable(registry)


def test_storage_driver_check_with_s3_stopped(tmp_path: Path, registry_secret: str) -> None:
    """The S3 server stops: the storage driver check fails, the registry answers 503."""
    with MotoServer(tmp_path / "moto") as moto:
        bucket = moto.create_bucket()
        debug_port = free_port()
        registry = S3RegistryProcess(
            tmp_path / "registry", s3=s3_params(moto.url, bucket), secret=registry_secret,
            overrides={
                "http": {"debug": {"addr": f"127.0.0.1:{debug_port}"}},
                "health": {"storagedriver": {"enabled": True, "interval": "200ms",
                                             "threshold": 1}},
            },
        )
        with registry:
            debug = f"http://127.0.0.1:{debug_port}/debug/health"
            assert httpx.get(debug).json() == {}
            moto.stop()
            wait_until(lambda: httpx.get(debug, timeout=30).status_code == 503,
                       what="storage driver check failing", deadline=60, log=registry.log_tail)
            failing = httpx.get(debug).json()
            assert list(failing) == ["storagedriver_s3"] and failing["storagedriver_s3"]
            response = httpx.get(registry.url + "/v2/")
            assert response.status_code == 503
            assert error_codes(response) == ["UNAVAILABLE"]
