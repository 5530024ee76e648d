"""``GET /v2/``, the API version header on every kind of response, and the error envelope."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from tests.support.api import (
    API_VERSION,
    API_VERSION_HEADER,
    assert_error,
    random_repo,
    raw_request,
)

if TYPE_CHECKING:
    from servers import RegistryProcess


def test_base_endpoint(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {}
    assert response.headers["Content-Length"] == str(len(response.content))


def test_base_endpoint_head(client: httpx.Client) -> None:
    response = client.head("/v2/")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.content == b""


def test_base_endpoint_raw_http(registry: RegistryProcess) -> None:
    """The header name is sent as clients expect it, whatever its case on the wire."""
    url = registry.url
    response = raw_request(url, "GET", "/v2/")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.json() == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/{repo}/blobs/sha256:" + "0" * 64),
        ("HEAD", "/v2/{repo}/blobs/sha256:" + "0" * 64),
        ("DELETE", "/v2/{repo}/blobs/sha256:" + "0" * 64),
        ("GET", "/v2/{repo}/blobs/sha256:xyz"),
        ("GET", "/v2/{repo}/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        ("GET", "/v2/no/such/route"),
        ("GET", "/nothing-here"),
    ],
)
def test_api_version_header_on_errors(client: httpx.Client, method: str, path: str) -> None:
    """Errors and unrouted paths carry the header too (the client fixture checks every
    response; this makes the error cases explicit)."""
    response = client.request(method, path.format(repo=random_repo()))
    assert 400 <= response.status_code < 500
    assert response.headers[API_VERSION_HEADER] == API_VERSION


def test_error_envelope_shape(client: httpx.Client) -> None:
    response = client.get(f"/v2/{random_repo()}/blobs/sha256:{'0' * 64}")
    assert_error(response, 404, "BLOB_UNKNOWN")
    body = response.json()
    assert set(body) == {"errors"}
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["code"] == "BLOB_UNKNOWN"
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "detail"}
