"""Small client-side helpers for the black-box API tests (no server code is imported).

Every helper talks HTTP to a real registry process; nothing here knows which server it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

__all__ = [
    "API_VERSION",
    "API_VERSION_HEADER",
    "TARGET",
    "RawResponse",
    "assert_api_version",
    "assert_error",
    "blob_path",
    "content_range",
    "deviates_on_distribution",
    "digest_of",
    "error_codes",
    "follow",
    "patch_chunk",
    "push_blob",
    "random_repo",
    "raw_request",
    "request_method",
    "start_upload",
    "upload_range",
    "upload_state",
    "upload_uuid",
    "uploads_path",
    "with_query",
    "with_state",
]

#: Which server the suite runs against: ``dockyard`` (default) or ``distribution``.
TARGET = os.environ.get("DOCKYARD_TEST_TARGET", "dockyard")

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"


def deviates_on_distribution(reason: str) -> pytest.MarkDecorator:
    """Skip a test that checks issue 2 / OCI 1.1 where distribution 2.8 behaves otherwise.

    ``reason`` states the exact difference seen from ``docker-registry`` 2.8.2.
    """
    return pytest.mark.skipif(TARGET == "distribution", reason=f"distribution 2.8: {reason}")


# -- names and digests -------------------------------------------------------------------


def random_repo(prefix: str = "test") -> str:
    """A repository name nobody else uses, such as ``test/3f2a9c1b0d4e``."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


# -- paths and locations -----------------------------------------------------------------


def blob_path(repo: str, digest: str) -> str:
    return f"/v2/{repo}/blobs/{digest}"


def uploads_path(repo: str) -> str:
    return f"/v2/{repo}/blobs/uploads/"


def upload_range(offset: int) -> str:
    """The ``Range`` an upload reports after ``offset`` bytes (``0-0`` while empty)."""
    return f"0-{max(offset - 1, 0)}"


def follow(client: httpx.Client, location: str) -> str:
    """The absolute URL a client reaches by following ``location`` (relative or absolute)."""
    return urljoin(str(client.base_url), location)


def with_query(location: str, **params: str) -> str:
    """``location`` with ``params`` appended, keeping its own query (``_state``) intact.

    httpx's ``params=`` would replace the query string, so tests use this instead.
    """
    if not params:
        return location
    separator = "&" if urlsplit(location).query else "?"
    return f"{location}{separator}{urlencode(params)}"


def upload_uuid(location: str) -> str:
    """The last path segment of an upload location."""
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]


def upload_state(location: str) -> str | None:
    """The decoded ``_state`` query parameter of an upload location, if any."""
    return dict(parse_qsl(urlsplit(location).query)).get("_state")


def with_state(location: str, state: str | None) -> str:
    """``location`` with its ``_state`` replaced (``None`` removes it)."""
    parts = urlsplit(location)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "_state"]
    if state is not None:
        query.append(("_state", state))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def content_range(start: int, data: bytes) -> str:
    """The OCI ``Content-Range`` value for ``data`` written at ``start`` (``start-end``)."""
    return f"{start}-{start + len(data) - 1}"


# -- requests ----------------------------------------------------------------------------


def start_upload(client: httpx.Client, repo: str) -> str:
    """POST a new upload session; return its Location resolved to an absolute URL."""
    response = client.post(uploads_path(repo))
    assert response.status_code == 202, response.text
    return follow(client, response.headers["Location"])


def patch_chunk(
    client: httpx.Client,
    location: str,
    data: bytes,
    start: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """PATCH ``data`` to an upload; with ``start``, send ``Content-Range: start-end``."""
    sent: dict[str, str] = {"Content-Type": "application/octet-stream"}
    if start is not None:
        sent["Content-Range"] = content_range(start, data)
    sent.update(headers or {})
    return client.patch(location, content=data, headers=sent)


def push_blob(client: httpx.Client, repo: str, data: bytes, algorithm: str = "sha256") -> str:
    """Upload ``data`` with POST + PUT (works on every registry); return its digest."""
    digest = digest_of(data, algorithm)
    location = start_upload(client, repo)
    response = client.put(
        with_query(location, digest=digest),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return digest


# -- assertions --------------------------------------------------------------------------


def assert_api_version(headers: Mapping[str, str] | httpx.Headers) -> None:
    value = headers.get(API_VERSION_HEADER) or headers.get(API_VERSION_HEADER.lower())
    assert value == API_VERSION, f"{API_VERSION_HEADER} is {value!r}"


def error_codes(response: httpx.Response | RawResponse) -> list[str]:
    """The ``code`` of each error in the JSON envelope of ``response``."""
    body: Any = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
    codes = []
    for error in body["errors"]:
        assert isinstance(error, dict), body
        assert isinstance(error.get("code"), str), body
        assert isinstance(error.get("message", ""), str), body
        codes.append(error["code"])
    return codes


def assert_error(
    response: httpx.Response | RawResponse, status: int | Iterable[int], code: str
) -> None:
    """``response`` has ``status`` (or one of them) and the envelope carries ``code``."""
    statuses = {status} if isinstance(status, int) else set(status)
    assert response.status_code in statuses, (response.status_code, response.text)
    assert_api_version(response.headers)
    if request_method(response) != "HEAD":
        assert response.headers.get("Content-Type", "").startswith("application/json"), (
            response.headers
        )
        assert code in error_codes(response), response.text


def request_method(response: httpx.Response | RawResponse) -> str:
    if isinstance(response, httpx.Response):
        return response.request.method
    return response.request_method


# -- raw HTTP ----------------------------------------------------------------------------


@dataclass
class RawResponse:
    """A response read off a raw socket (for paths a client library would normalise)."""

    status_code: int
    reason: str
    headers: httpx.Headers
    content: bytes
    request_method: str
    complete: bool = field(default=True)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def raw_request(
    base_url: str,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 30.0,
) -> RawResponse:
    """Send ``method target`` byte for byte (no normalisation of ``..`` or ``%2e``).

    The connection is closed by the request, so the body is read to EOF;
    ``complete`` is False when fewer bytes arrived than ``Content-Length`` announced.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    sent = {k.lower() for k in (headers or {})}
    if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in sent:
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    pairs = [line.split(":", 1) for line in header_lines if ":" in line]
    parsed = httpx.Headers([(name.strip(), value.strip()) for name, value in pairs])
    complete = True
    if "transfer-encoding" in parsed:
        content = _dechunk(content)
    elif method != "HEAD" and int(status) not in (204, 304) and "content-length" in parsed:
        expected = int(parsed["content-length"])
        complete = len(content) == expected
        content = content[:expected]
    return RawResponse(
        status_code=int(status),
        reason=reason[0] if reason else "",
        headers=parsed,
        content=content,
        request_method=method,
        complete=complete,
    )


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)
