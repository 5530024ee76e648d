"""OpenTelemetry tracing (the ``otel`` extra): spans per request and per storage call.

The registry process exports OTLP over HTTP to a receiver in this test; a unit test
checks the driver observer with the SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.ops.conftest import DebugRegistryFactory
from tests.support.api import blob_path, push_blob, random_repo
from tests.support.net import wait_until

trace_pb = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra (opentelemetry-sdk, OTLP exporter) is not installed",
)
pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http",
                    reason="the otel extra is not installed")


class _Collector(http.server.BaseHTTPRequestHandler):
    spans: list[Any]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = trace_pb.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                type(self).spans.extend(scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    spans: list[Any] = []
    handler = type("Collector", (_Collector,), {"spans": spans})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", spans
    finally:
        server.shutdown()
        server.server_close()


def test_request_and_storage_spans(
    debug_registry_factory: DebugRegistryFactory, collector: tuple[str, list[Any]]
) -> None:
    endpoint, spans = collector
    registry = debug_registry_factory(env={
        "OTEL_SERVICE_NAME": "dockyard-test",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    })
    repo = random_repo("traced")
    with httpx.Client(base_url=registry.url) as client:
        digest = push_blob(client, repo, b"traced bytes")
    trace_id = os.urandom(16).hex()
    caller_span = os.urandom(8).hex()
    response = httpx.get(registry.url + blob_path(repo, digest),
                         headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert response.content == b"traced bytes"

    def ours() -> list[Any]:
        return [s for s in list(spans) if s.trace_id.hex() == trace_id]

    def exported() -> bool:
        found = ours()
        return any(s.name.startswith("GET ") for s in found) and any(
            s.name.startswith("storage ") for s in found)

    wait_until(exported, what="spans exported", deadline=20, log=registry.log_tail)
    found = ours()
    (server_span,) = [s for s in found if s.name.startswith("GET ")]
    assert server_span.name == "GET /v2/{name}/blobs/{digest}"
    assert server_span.parent_span_id.hex() == caller_span  # the caller's trace continues
    attributes = {a.key: a.value for a in server_span.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    storage = [s for s in found if s.name.startswith("storage ")]
    assert all(s.parent_span_id == server_span.span_id for s in storage)
    assert {s.name for s in storage} & {"storage Stat", "storage GetContent", "storage Reader"}


def test_driver_spans_in_memory() -> None:
    """The storage observer's spans, with the SDK's in-memory exporter (a unit)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dockyard.storage.drivers.base import CheckedDriver, PathNotFound
    from dockyard.storage.drivers.inmemory import InMemoryDriver
    from dockyard.storage.drivers.observed import ObservedDriver
    from dockyard.tracing._otel import Tracing

    exporter = InMemorySpanExporter()
    tracing = Tracing.from_environment(exporter)
    inner = InMemoryDriver()
    driver = CheckedDriver(ObservedDriver(inner, tracing.storage_observer(inner.name)))

    async def work() -> None:
        await driver.put_content("/a/b", b"data")
        assert b"".join([c async for c in driver.reader("/a/b")]) == b"data"
        with pytest.raises(PathNotFound):
            await driver.stat("/missing")

    asyncio.run(work())
    tracing.shutdown()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["storage PutContent", "storage Reader", "storage Stat"]
    assert spans[0].attributes is not None and spans[0].attributes["storage.path"] == "/a/b"
    assert not spans[2].status.is_ok  # the failed stat is recorded as an error
